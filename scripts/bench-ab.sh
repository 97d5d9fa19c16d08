#!/usr/bin/env bash
# Compare an older commit's API and consumer with this checkout's, on the same servers, one
# right after the other: the older commit, this checkout, this checkout without group commit.
# Meant to run inside private servers of its own:
#
#   .venv/bin/python -m loadtest.private -- bash scripts/bench-ab.sh BASE OUT [SCENARIOS] [SECONDS] [ROUNDS]
#
# BASE is a commit (its code is exported to a temporary directory and run from there with
# this checkout's virtualenv); OUT gets one load-test report folder per run.
set -euo pipefail
BASE=$1
OUT=$2
SCENARIOS=${3:-save,naive}
SECONDS_EACH=${4:-10}
ROUNDS=${5:-2}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=$ROOT/.venv/bin/python
VOLREG=$ROOT/.venv/bin/volreg
CSV=${BENCH_CANDIDATES_CSV:?run this inside python -m loadtest.private}
SRC=$(mktemp -d)
trap 'rm -rf "$SRC"' EXIT
mkdir -p "$OUT"
git -C "$ROOT" archive "$BASE" | tar -x -C "$SRC"
CLI=service.main.cli
[ -f "$SRC/service/main/cli.py" ] || CLI=service.cli
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

start_base() {
	(
		cd "$SRC"
		export PYTHONPATH=$SRC VOLREG_HTTP_HOST=127.0.0.1 VOLREG_HTTP_PORT=$PORT VOLREG_QUEUE_PREFIX=volreg-base
		setsid "$PY" -m "$CLI" serve --naive >>"$OUT/base-api.log" 2>&1 &
		echo $! >"$OUT/base-api.pid"
		setsid "$PY" -m "$CLI" consume >>"$OUT/base-consumer.log" 2>&1 &
		echo $! >"$OUT/base-consumer.pid"
	)
	for _ in $(seq 60); do
		curl -fsS -o /dev/null "http://127.0.0.1:$PORT/health/ready" 2>/dev/null && return 0
		sleep 1
	done
	echo "the base API did not become ready; see $OUT/base-api.log" >&2
	return 1
}

stop_base() {
	kill -TERM "$(cat "$OUT/base-api.pid")" 2>/dev/null || true
	sleep 3
	kill -TERM "$(cat "$OUT/base-consumer.pid")" 2>/dev/null || true
	sleep 2
}

run() { # NAME, then the loadtest arguments
	local name=$1
	shift
	echo "== $name; load average $(cut -d' ' -f1-3 /proc/loadavg)"
	"$VOLREG" loadtest "$@" --scenarios "$SCENARIOS" --duration "$SECONDS_EACH" \
		--candidates-csv "$CSV" --out "$OUT/$name" 2>/dev/null | grep '^| [a-z]' || true
}

for round in $(seq "$ROUNDS"); do
	start_base
	VOLREG_QUEUE_PREFIX=volreg-base run "base$round" --url "http://127.0.0.1:$PORT" \
		--api-pid "$(cat "$OUT/base-api.pid")" --consumer-pid "$(cat "$OUT/base-consumer.pid")"
	stop_base
	run "new$round" --spawn 1
	VOLREG_GROUP_COMMIT=0 run "nogroup$round" --spawn 1
done
