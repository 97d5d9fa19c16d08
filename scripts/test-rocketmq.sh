#!/usr/bin/env bash
# make test-rocketmq: the save, protocol, failure and reconciler suites again with RocketMQ 5
# as the form broker. Installs Java and Maven when missing, starts our RocketMQ
# (scripts/rocketmq.sh; the first run downloads its jars) and stops it again afterwards unless
# it was already running. Extra pytest arguments come from PYTEST_ARGS.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

VOLREG_BROKER=rocketmq bash scripts/ensure-deps.sh
bash scripts/venv.sh

started=0
if ! bash scripts/rocketmq.sh status; then
	started=1
fi
stop_ours() {
	if [ "$started" = 1 ]; then
		bash scripts/rocketmq.sh down || true
	fi
}
trap stop_ours EXIT
bash scripts/rocketmq.sh up

suites=(tests/integration/test_save_path.py tests/integration/test_protocol.py
	tests/integration/test_failures.py
	# The chaos harness on a private RocketMQ of its own (spare ports, its own directory).
	tests/system/test_chaos_rocketmq.py)
for f in tests/integration/test_reconcile*.py; do suites+=("$f"); done
# Transactional half messages, their rollback and the broker's check-backs (about 70 s).
suites+=(tests/integration/test_rocketmq_transactions.py)
# Last: it kills our broker with SIGKILL and starts it again.
suites+=(tests/integration/test_rocketmq_restart.py)
# shellcheck disable=SC2086  # PYTEST_ARGS is a list of options
VOLREG_TEST_BROKER=rocketmq .venv/bin/pytest "${suites[@]}" ${PYTEST_ARGS:-}
# The save, protocol and failure suites again with transactional saves through the API (the
# tests that drive plain sends themselves skip).
# shellcheck disable=SC2086
VOLREG_TEST_BROKER=rocketmq VOLREG_TEST_ROCKETMQ_TRANSACTIONS=1 .venv/bin/pytest \
	tests/integration/test_save_path.py tests/integration/test_protocol.py \
	tests/integration/test_failures.py ${PYTEST_ARGS:-}
