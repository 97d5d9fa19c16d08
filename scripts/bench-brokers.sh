#!/usr/bin/env bash
# Both form brokers side by side from one session: the save scenario through the API on
# RabbitMQ (group commit, and one message per save) and on RocketMQ (one message per save,
# transactional half messages, group commit), each variant in turn, ROUNDS times, then the
# send-to-ack micro-benchmark (loadtest/broker_sends.py), then a Markdown report of it all
# (loadtest/side_by_side.py) in OUT/report.md. Needs our RocketMQ running
# (bash scripts/rocketmq.sh up) and runs inside private servers of its own:
#
#   .venv/bin/python -m loadtest.private -- bash scripts/bench-brokers.sh OUT [SECONDS] [ROUNDS]
set -euo pipefail
OUT=$1
SECONDS_EACH=${2:-20}
ROUNDS=${3:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
VOLREG=$ROOT/.venv/bin/volreg
PY=$ROOT/.venv/bin/python
CSV=${BENCH_CANDIDATES_CSV:?run this inside python -m loadtest.private}
[ "$SECONDS_EACH" -ge 1 ] && [ "$SECONDS_EACH" -le 120 ] || {
	echo "SECONDS: 1-120" >&2
	exit 2
}
mkdir -p "$OUT"

# variant NAME BROKER GROUP_COMMIT TRANSACTIONS: one load test, on queues/topics of its own.
variant() {
	local name=$1 broker=$2 group=$3 tx=$4 dir
	dir=$OUT/$name-$round
	echo "== $name (round $round); load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
	VOLREG_BROKER=$broker VOLREG_GROUP_COMMIT=$group VOLREG_ROCKETMQ_TRANSACTIONS=$tx \
		VOLREG_QUEUE_PREFIX="volreg-bench-$name" \
		"$VOLREG" loadtest --spawn 1 --broker "$broker" --scenarios save \
		--duration "$SECONDS_EACH" --slice "$SECONDS_EACH" --candidates-csv "$CSV" \
		--out "$dir" >"$dir.out" 2>&1 || {
		tail -n 20 "$dir.out" >&2
		return 1
	}
}

VARIANTS=("rabbitmq-batched rabbitmq 1 0" "rocketmq-plain rocketmq 0 0" "rocketmq-tx rocketmq 0 1"
	"rocketmq-batched rocketmq 1 0" "rabbitmq-plain rabbitmq 0 0")
for round in $(seq "$ROUNDS"); do
	# Every other round in reverse order: who runs first (or last) changes sides.
	order=$(seq 0 $((${#VARIANTS[@]} - 1)))
	[ $((round % 2)) = 0 ] && order=$(seq $((${#VARIANTS[@]} - 1)) -1 0)
	for i in $order; do
		# shellcheck disable=SC2086  # the variant's four words
		variant ${VARIANTS[$i]}
	done
done
echo "== send-to-ack; load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2
"$PY" -m loadtest.broker_sends --json "$OUT/sends.json" >"$OUT/sends.out"
"$PY" -m loadtest.side_by_side "$OUT" >"$OUT/report.md"
echo "report: $OUT/report.md" >&2
