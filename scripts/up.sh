#!/usr/bin/env bash
# Bring up a local demo: servers, venv, schema, demo data, then the API, the consumer and the
# hot-item aggregator in the background. Safe to run again: whatever already runs is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

READY_WAIT_S=${READY_WAIT_S:-60}
DEMO_CSV=var/demo/candidates.csv
ENV_FILE=var/volreg.env
VOLREG=.venv/bin/volreg

# Servers first (they write var/volreg.env with the credentials), then the virtualenv.
bash scripts/ensure-deps.sh
bash scripts/venv.sh
# `make up VOLREG_BROKER=rocketmq`: saves go through our RocketMQ (the API and the consumer
# below inherit VOLREG_BROKER); the catalogue broadcast stays on RabbitMQ.
if [ "${VOLREG_BROKER:-rabbitmq}" = rocketmq ]; then
	bash scripts/rocketmq.sh up
fi

mkdir -p var/log var/run var/demo

set -a
# shellcheck source=/dev/null
. "$ENV_FILE"
set +a

PORT=${VOLREG_HTTP_PORT:-8080}
HOST=${VOLREG_HTTP_HOST:-127.0.0.1}
case $HOST in '' | 0.0.0.0 | '::' | '[::]') HOST=127.0.0.1 ;; esac
BASE=http://$HOST:$PORT

log "db: migrating"
"$VOLREG" migrate

if [ ! -f "$DEMO_CSV" ]; then
	log "demo: generating $DEMO_CSV"
	"$VOLREG" gen-data --candidates 10000 --out "$DEMO_CSV" || {
		rm -f "$DEMO_CSV"
		die "demo: gen-data failed"
	}
fi
log "demo: importing $DEMO_CSV"
"$VOLREG" import "$DEMO_CSV"
# Demo staff (created or updated, so running this again is harmless).
VOLREG_NEW_PASSWORD=demo-admin "$VOLREG" admin admin
VOLREG_NEW_PASSWORD=demo-teacher "$VOLREG" admin teacher-demo --role teacher --school 110105001
# The demo batch used in the example below; its window is kept open around now (local time).
"$VOLREG" batch undergrad-1 --name "Undergraduate, first batch" \
	--opens "$(date -d '-1 day' '+%Y-%m-%dT%H:%M:%S')" \
	--closes "$(date -d '+30 days' '+%Y-%m-%dT%H:%M:%S')"

# start_bg NAME: run `volreg NAME` in its own session unless our copy already runs.
start_bg() {
	local name=$1 pid
	if pid=$(our_pid "$name"); then
		log "$name: already running (pid $pid)"
		return 0
	fi
	printf '\n=== %s: starting at %s ===\n' "$name" "$(date '+%F %T')" >>"var/log/$name.log"
	nohup setsid "$VOLREG" "$name" >>"var/log/$name.log" 2>&1 </dev/null &
	echo "$!" >"var/run/$name.pid"
	log "$name: started (pid $!, log var/log/$name.log)"
}

start_bg serve
start_bg consume
start_bg hot

show_logs() {
	local name
	for name in serve consume hot; do
		printf '\n--- last lines of var/log/%s.log ---\n' "$name" >&2
		tail -n 30 "var/log/$name.log" >&2 || true
	done
}

# The PIDs were just written by us (or checked by our_pid), so a liveness check is enough;
# matching the command line here could race with nohup/setsid still exec'ing.
ready() {
	local name
	for name in serve consume hot; do
		pid_alive "$(cat "var/run/$name.pid")" || return 2
	done
	curl -fsS -o /dev/null --max-time 2 "$BASE/health/ready" 2>/dev/null
}

log "waiting for $BASE/health/ready"
deadline=$((SECONDS + READY_WAIT_S))
while :; do
	rc=0
	ready || rc=$?
	[ "$rc" -eq 0 ] && break
	if [ "$rc" -eq 2 ]; then
		show_logs
		die "a volreg process exited; see the logs above (make down cleans up)"
	fi
	if [ "$SECONDS" -ge "$deadline" ]; then
		show_logs
		die "not ready after ${READY_WAIT_S}s; see the logs above (stop with: make down)"
	fi
	sleep 1
done

# The demo catalogue, published through the admin API like a real one: institutions
# 10001-10020, each offering majors 080901-080910 (the example below chooses from them).
admin_token=$(curl -fsS -X POST "$BASE/api/v1/auth/login" -H 'Content-Type: application/json' \
	-d '{"username":"admin","password":"demo-admin"}' |
	.venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["token"])') ||
	die "demo: admin login failed"
majors=$(for m in $(seq 80901 80910); do printf '{"code":"%06d","name":"Major %06d"},' "$m" "$m"; done)
for code in $(seq 10001 10020); do
	curl -fsS -o /dev/null -X PUT "$BASE/api/v1/admin/catalogue/institutions/$code" \
		-H "Authorization: Bearer $admin_token" -H 'Content-Type: application/json' \
		-d "{\"name\":\"University $code\",\"majors\":[${majors%,}]}" ||
		die "demo: publishing institution $code failed"
done
log "demo: catalogue published (institutions 10001-10020)"

cat <<EOF

volreg is up at $BASE on ${VOLREG_BROKER:-rabbitmq}  (logs: var/log/serve.log, var/log/consume.log)

Try it:

TOKEN=\$(curl -s -X POST $BASE/api/v1/auth/login -H 'Content-Type: application/json' -d '{"candidate_id":"11010519491231002X","password":"demo-password"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -s -X PUT $BASE/api/v1/candidates/11010519491231002X/forms/undergrad-1 -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' -d '{"choices":[{"institution":"10001","majors":["080901","080902"],"accept_adjustment":true}]}'
curl -s $BASE/api/v1/candidates/11010519491231002X/forms/undergrad-1 -H "Authorization: Bearer \$TOKEN"
curl -s $BASE/api/v1/candidates/11010519491231002X/exam -H "Authorization: Bearer \$TOKEN"
curl -s $BASE/api/v1/catalogue/institutions/10001

Teachers and admins log in with a username (teacher-demo / demo-teacher, admin / demo-admin):

TEACHER=\$(curl -s -X POST $BASE/api/v1/auth/login -H 'Content-Type: application/json' -d '{"username":"teacher-demo","password":"demo-teacher"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
curl -s "$BASE/api/v1/schools/110105001/candidates?status=filed&limit=5" -H "Authorization: Bearer \$TEACHER"

stop with: make down
EOF
