#!/usr/bin/env bash
# Make sure Redis, MariaDB and RabbitMQ are installed, running on 127.0.0.1 and that the
# application's MariaDB user exists. Safe to run again: servers that already answer are
# left alone, and nothing is ever stopped or restarted.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

WAIT_S=${DEPS_WAIT_S:-90}
REDIS_PORT=6379
MARIADB_PORT=3306
AMQP_PORT=5672
DB_NAME=volreg
DB_USER=volreg
DB_PASSWORD=volreg

# --- install what is missing -------------------------------------------------------------

missing=()
have redis-server || missing+=(redis-server)
have redis-cli || missing+=(redis-tools)
have mariadbd || missing+=(mariadb-server)
have mariadb || missing+=(mariadb-client)
{ have rabbitmq-server && have rabbitmqctl; } || missing+=(rabbitmq-server)
have curl || missing+=(curl)
# deploy/nginx is tested in front of two API instances (tests/system/test_nginx.py), which runs its
# own nginx on a spare port: the packaged service itself is not needed.
have nginx || missing+=(nginx)
# The HTTP load generator `volreg loadtest` drives (not needed to run the service).
have wrk || missing+=(wrk)
if [ "${#missing[@]}" -gt 0 ]; then
	apt_install "${missing[@]}"
	hash -r
else
	log "packages: all installed"
fi

# --- start servers that do not answer ----------------------------------------------------

systemd_running() { [ -d /run/systemd/system ] && have systemctl; }

redis_up() {
	[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = PONG ]
}

mariadb_up() {
	if have mariadb-admin; then
		# Exits 0 whenever the server answers, even with "access denied".
		mariadb-admin --protocol=tcp -h127.0.0.1 -P"$MARIADB_PORT" --connect-timeout=2 ping \
			>/dev/null 2>&1
	else
		tcp_open 127.0.0.1 "$MARIADB_PORT"
	fi
}

rabbitmq_up() { tcp_open 127.0.0.1 "$AMQP_PORT"; }

# A RabbitMQ node that is still booting answers the CLI before its AMQP listener opens;
# starting a second node then would fail, so only wait for it.
rabbitmq_node_running() {
	if is_root; then
		rabbitmq-diagnostics -q ping >/dev/null 2>&1
	elif have sudo && sudo -n true 2>/dev/null; then
		sudo -n rabbitmq-diagnostics -q ping >/dev/null 2>&1
	else
		return 1
	fi
}

start_redis() {
	redis-server --daemonize yes --bind 127.0.0.1 --port "$REDIS_PORT" \
		--save "" --appendonly no --dir /tmp >/dev/null
}

start_mariadb() {
	# Runs as a condition, where `set -e` is off: check every step.
	as_root mkdir -p /run/mysqld || return 1
	as_root chown mysql:mysql /run/mysqld || return 1
	if ! as_root test -d /var/lib/mysql/mysql; then
		log "mariadb: initialising data directory"
		as_root mariadb-install-db --user=mysql --datadir=/var/lib/mysql \
			--auth-root-authentication-method=socket --skip-test-db >/dev/null || return 1
	fi
	local out=/dev/null
	as_root test -d /var/log/mysql && out=/var/log/mysql/mariadbd.log
	as_root start-stop-daemon --start --oknodo --background --output "$out" \
		--exec /usr/sbin/mariadbd -- --user=mysql
}

start_rabbitmq() { as_root rabbitmq-server -detached; }

# ensure_server NAME UNIT UP_FN START_FN HINT
ensure_server() {
	local name=$1 unit=$2 up=$3 start=$4 hint=$5 how=""
	if "$up"; then
		log "$name: running"
		return 0
	fi
	if tcp_open 127.0.0.1 "$(port_of "$name")" || { [ "$name" = rabbitmq ] && rabbitmq_node_running; }; then
		# Something is there but not answering yet (still loading or booting): wait for it.
		log "$name: waiting for the running server to answer"
		wait_until "$WAIT_S" "$up" || die "$name: a server is there but does not answer after ${WAIT_S}s; $hint"
		log "$name: running"
		return 0
	fi
	log "$name: starting"
	if systemd_running && as_root systemctl start "$unit" >/dev/null 2>&1; then
		how="systemctl start $unit"
	elif "$start"; then
		how="direct start"
	elif have service && as_root service "$unit" start; then
		how="service $unit start"
	else
		die "$name: could not start it; $hint"
	fi
	wait_until "$WAIT_S" "$up" || die "$name: started ($how) but it does not answer after ${WAIT_S}s; $hint"
	log "$name: started"
}

port_of() {
	case $1 in
	redis) echo "$REDIS_PORT" ;;
	mariadb) echo "$MARIADB_PORT" ;;
	rabbitmq) echo "$AMQP_PORT" ;;
	esac
}

ensure_server redis redis-server redis_up start_redis \
	"try 'redis-server --bind 127.0.0.1 --port $REDIS_PORT' in a terminal to see why"
ensure_server mariadb mariadb mariadb_up start_mariadb \
	"see /var/log/mysql/ (or run 'mariadbd --user=mysql' as root to see why)"
ensure_server rabbitmq rabbitmq-server rabbitmq_up start_rabbitmq \
	"see /var/log/rabbitmq/"

# --- the application's database user ------------------------------------------------------

db_as_app() {
	MYSQL_PWD=$DB_PASSWORD mariadb -u"$DB_USER" --connect-timeout=5 -N -B "$@"
}

app_user_ok() {
	local grants
	grants=$(db_as_app --protocol=tcp -h127.0.0.1 -P"$MARIADB_PORT" -e 'SHOW GRANTS' "$DB_NAME" 2>/dev/null) ||
		return 1
	db_as_app --protocol=socket -e 'SELECT 1' "$DB_NAME" >/dev/null 2>&1 || return 1
	grep -qF "ALL PRIVILEGES ON \`$DB_NAME%\`.*" <<<"$grants"
}

setup_sql="
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
CREATE USER IF NOT EXISTS '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'localhost' IDENTIFIED BY '$DB_PASSWORD';
ALTER USER '$DB_USER'@'127.0.0.1' IDENTIFIED BY '$DB_PASSWORD';
GRANT ALL PRIVILEGES ON \`$DB_NAME%\`.* TO '$DB_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`$DB_NAME%\`.* TO '$DB_USER'@'127.0.0.1';
"

if app_user_ok; then
	log "mariadb: user $DB_USER and database $DB_NAME ready"
else
	# A fresh Debian MariaDB lets root in only as OS root through the unix socket.
	if as_root mariadb --protocol=socket -uroot -e "$setup_sql"; then
		app_user_ok || die "mariadb: created user $DB_USER but cannot log in as it over 127.0.0.1:$MARIADB_PORT"
		log "mariadb: user $DB_USER and database $DB_NAME created"
	else
		printf '%s\n' "mariadb: cannot log in as root to create the application user." \
			"Run this SQL as a MariaDB administrator, then try again:" "$setup_sql" >&2
		exit 1
	fi
fi
