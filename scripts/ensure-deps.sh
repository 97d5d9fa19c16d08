#!/usr/bin/env bash
# Make sure Redis, MariaDB and RabbitMQ are installed, running on 127.0.0.1 and that each
# lets the application in with credentials of its own (generated into var/volreg.env on the
# first run). Servers this script starts are ours: data under var/, a pid file in var/run/,
# stopped by `make down`. A server someone else runs on the same port is used when it takes
# our credentials and never stopped or reconfigured. On our MariaDB the application's user may
# only read and write rows; the schema belongs to a migrate user (scripts/mariadb-users.sh,
# which also upgrades an older install). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

WAIT_S=${DEPS_WAIT_S:-90}
ROOT=$(pwd -P)
VAR=$ROOT/var
RUN_DIR=$VAR/run
REDIS_PORT=6379
MARIADB_PORT=3306
AMQP_PORT=5672
# RabbitMQ's inter-node port; ours is fixed so a second node on the machine cannot collide.
RABBIT_DIST_PORT=25673
RABBIT_NODE=volreg@localhost

mkdir -p "$RUN_DIR" "$VAR/log"

# --- install what is missing -------------------------------------------------------------

missing=()
need() { have "$1" || missing+=("$2"); }
need redis-server redis-server
need redis-cli redis-tools
need mariadbd mariadb-server
need mariadb mariadb-client
need mariadb-install-db mariadb-server
need rabbitmq-server rabbitmq-server
need rabbitmqctl rabbitmq-server
need curl curl
need python3 python3
# deploy/nginx is tested in front of two API instances (tests/system/test_nginx.py), which runs its
# own nginx on a spare port: the packaged service itself is not needed.
need nginx nginx
# The HTTP load generator `volreg loadtest` drives (not needed to run the service).
need wrk wrk
# tests/system/test_console.py drives the admin console in a real headless browser.
need chromium chromium
# promtool checks k8s/monitoring's alert rules (tests/system/test_monitoring.py); the
# Prometheus server of the package is never started.
need promtool prometheus
# Debian's python3 makes venvs only with python3-venv (ensurepip); ask once, quietly.
if have python3 && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
	missing+=(python3-venv)
fi
# A JVM broker (RocketMQ, VOLREG_BROKER=rocketmq) needs Java 17 and Maven for its jars.
if [ "${VOLREG_BROKER:-rabbitmq}" = rocketmq ]; then
	need java openjdk-17-jre-headless
	need mvn maven
fi
if [ "${#missing[@]}" -gt 0 ]; then
	# sort -u: one package may provide several of the commands above.
	mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
	apt_install "${missing[@]}"
	hash -r
else
	log "packages: all installed"
fi

# --- credentials of our own ----------------------------------------------------------------

VOLREG_ENV_FILE=$VAR/volreg.env bash scripts/credentials.sh
set -a
# shellcheck source=/dev/null
. "$VAR/volreg.env"
set +a
# Our servers are configured from the URLs in the env file (generated hex passwords, so the
# URLs need no decoding); a hand-edited URL pointing elsewhere is simply used as it is.
REDIS_PASSWORD=$(url_password "$VOLREG_REDIS_URL")
AMQP_USER=$(url_user "$VOLREG_AMQP_URL")
AMQP_PASSWORD=$(url_password "$VOLREG_AMQP_URL")
AMQP_VHOST=$(url_path "$VOLREG_AMQP_URL")
DB_USER=$(url_user "$VOLREG_MYSQL_DSN")
DB_PASSWORD=$(url_password "$VOLREG_MYSQL_DSN")
DB_NAME=$(url_path "$VOLREG_MYSQL_DSN")

# --- readiness: each check logs in as the application ---------------------------------------

redis_up() {
	[ "$(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 -p "$REDIS_PORT" \
		ping 2>/dev/null)" = PONG ]
}

db_as_app() {
	MYSQL_PWD=$DB_PASSWORD mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$MARIADB_PORT" \
		-u"$DB_USER" --connect-timeout=5 -N -B "$@"
}

# Answers as our user and may use our database (a server that says "access denied" is up
# but not usable, so it does not count).
mariadb_up() { db_as_app -e 'SELECT 1' "$DB_NAME" >/dev/null 2>&1; }

# Our server answers root on our socket (a fresh one has no user that may log in over TCP).
mariadb_answers() {
	mariadb-admin --no-defaults "--socket=$RUN_DIR/mariadb.sock" -uroot --connect-timeout=2 \
		ping >/dev/null 2>&1
}

rabbitmq_up() {
	python3 scripts/amqp_login.py 127.0.0.1 "$AMQP_PORT" "$AMQP_USER" "$AMQP_PASSWORD" \
		"$AMQP_VHOST" >/dev/null 2>&1
}

# --- our own servers -------------------------------------------------------------------------

# ours NAME: the server recorded in var/run/NAME.pid is alive.
ours() {
	local pid
	pid=$(cat "$RUN_DIR/$1.pid" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	pid_alive "$pid"
}

start_redis() {
	mkdir -p "$VAR/redis"
	(
		umask 077
		cat >"$VAR/redis/redis.conf" <<-EOF
			# Written by scripts/ensure-deps.sh; the password comes from var/volreg.env.
			bind 127.0.0.1
			port $REDIS_PORT
			requirepass $REDIS_PASSWORD
			dir $VAR/redis
			# No persistence: volreg treats Redis as a cache that may lose everything.
			save ""
			appendonly no
			daemonize yes
			pidfile $RUN_DIR/redis.pid
			logfile $VAR/log/redis.log
		EOF
	)
	redis-server "$VAR/redis/redis.conf"
}

mariadb_flags() {
	local flags=(--no-defaults "--datadir=$VAR/mariadb/data")
	# mariadbd refuses to run as root unless told to; as another user it runs as that user.
	is_root && flags+=(--user=root)
	printf '%s\n' "${flags[@]}"
}

start_mariadb() {
	local flags
	mapfile -t flags < <(mariadb_flags)
	mkdir -p "$VAR/mariadb"
	if [ ! -d "$VAR/mariadb/data/mysql" ]; then
		log "mariadb: initialising var/mariadb"
		# Root may log in only through our socket, as the OS user running this script.
		mariadb-install-db "${flags[@]}" --auth-root-authentication-method=socket \
			--skip-test-db >"$VAR/log/mariadb-install.log" 2>&1 || {
			tail -n 20 "$VAR/log/mariadb-install.log" >&2
			return 1
		}
	fi
	nohup setsid mariadbd "${flags[@]}" \
		"--socket=$RUN_DIR/mariadb.sock" "--pid-file=$RUN_DIR/mariadb.pid" \
		--port="$MARIADB_PORT" --bind-address=127.0.0.1 --skip-name-resolve \
		--innodb-flush-log-at-trx-commit=1 --sync-binlog=1 --max-connections=500 \
		--character-set-server=utf8mb4 "--log-error=$VAR/log/mariadb.log" \
		</dev/null >/dev/null 2>&1 &
}

rabbit_env() {
	printf '%s\n' \
		"HOME=$VAR/rabbitmq/home" \
		"RABBITMQ_NODENAME=$RABBIT_NODE" \
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1" \
		"RABBITMQ_NODE_PORT=$AMQP_PORT" \
		"RABBITMQ_DIST_PORT=$RABBIT_DIST_PORT" \
		"RABBITMQ_MNESIA_BASE=$VAR/rabbitmq/mnesia" \
		"RABBITMQ_LOG_BASE=$VAR/log/rabbitmq" \
		"RABBITMQ_CONFIG_FILE=$VAR/rabbitmq/rabbitmq.conf" \
		"RABBITMQ_ENABLED_PLUGINS_FILE=$VAR/rabbitmq/enabled_plugins" \
		"RABBITMQ_PID_FILE=$RUN_DIR/rabbitmq.pid"
}

start_rabbitmq() {
	local home=$VAR/rabbitmq/home script=/usr/lib/rabbitmq/bin/rabbitmq-server envs
	mkdir -p "$home" "$VAR/rabbitmq/mnesia" "$VAR/log/rabbitmq"
	if [ ! -f "$home/.erlang.cookie" ]; then
		(umask 077 && python3 -c 'import secrets; print(secrets.token_hex(16), end="")' \
			>"$home/.erlang.cookie")
		chmod 400 "$home/.erlang.cookie" # Erlang refuses a cookie others can read
	fi
	printf '[].\n' >"$VAR/rabbitmq/enabled_plugins" # no management plugin
	(
		umask 077
		# The node creates this user and vhost on its first boot, and no guest user at all.
		cat >"$VAR/rabbitmq/rabbitmq.conf" <<-EOF
			listeners.tcp.default = 127.0.0.1:$AMQP_PORT
			default_user = $AMQP_USER
			default_pass = $AMQP_PASSWORD
			default_vhost = $AMQP_VHOST
			default_permissions.configure = .*
			default_permissions.read = .*
			default_permissions.write = .*
			default_user_tags.administrator = true
			vm_memory_high_watermark.relative = 0.2
		EOF
	)
	# The plain start script: Debian's wrapper would switch to the rabbitmq user and its
	# own directories.
	[ -x "$script" ] || script=$(command -v rabbitmq-server)
	mapfile -t envs < <(rabbit_env)
	env "${envs[@]}" nohup setsid "$script" </dev/null >>"$VAR/log/rabbitmq-server.log" 2>&1 &
}

# The application's user (row privileges only) and the schema's owner (migrations) on a
# MariaDB we may administer: ours (root through our socket) or with an administrator's
# credentials the user supplied. Also upgrades an older install whose application user held
# every privilege. Returns 1 when this server is not ours to administer.
mariadb_users() {
	if [ -S "$RUN_DIR/mariadb.sock" ] && ours mariadb; then
		bash scripts/mariadb-users.sh "$VAR/volreg.env" "$MARIADB_PORT" "$RUN_DIR/mariadb.sock"
	elif [ -n "${VOLREG_DB_ADMIN_USER:-}" ]; then
		bash scripts/mariadb-users.sh "$VAR/volreg.env" "$MARIADB_PORT"
	else
		return 1
	fi
}

# The schema owner, if var/volreg.env names one, logs in.
migrate_user_up() {
	local user password
	user=$(sed -n 's/^VOLREG_MYSQL_MIGRATE_USER=//p' "$VAR/volreg.env" | tail -n 1)
	password=$(sed -n 's/^VOLREG_MYSQL_MIGRATE_PASSWORD=//p' "$VAR/volreg.env" | tail -n 1)
	[ -n "$user" ] || return 2
	MYSQL_PWD=$password mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P"$MARIADB_PORT" \
		-u"$user" --connect-timeout=5 -e 'SELECT 1' "$DB_NAME" >/dev/null 2>&1
}

# ensure_server NAME PORT UP_FN START_FN [ANSWERS_FN]: use a server that lets us in, else
# start ours and wait until ANSWERS_FN (default UP_FN) succeeds.
ensure_server() {
	local name=$1 port=$2 up=$3 start=$4 answers=${5:-$3}
	if "$up"; then
		if ours "$name"; then log "$name: running (ours)"; else log "$name: running"; fi
		return 0
	fi
	if ours "$name"; then
		# Ours and alive but not answering yet (still booting): wait for it.
		log "$name: waiting for our server to answer"
	elif tcp_open 127.0.0.1 "$port"; then
		# Someone else's server that refuses our credentials. MariaDB may still get our
		# user (see mariadb_create_user); the others cannot be fixed from here.
		[ "$name" = mariadb ] && return 0
		die "$name: the server on 127.0.0.1:$port is not ours and refuses volreg's" \
			"credentials (var/volreg.env). Stop it, or put a URL that works into var/volreg.env."
	else
		log "$name: starting ours (data under var/, log in var/log/)"
		"$start" || die "$name: could not start it; see var/log/"
	fi
	wait_until "$WAIT_S" "$answers" || die "$name: does not answer after ${WAIT_S}s; see var/log/"
	log "$name: started"
}

ensure_server redis "$REDIS_PORT" redis_up start_redis
ensure_server rabbitmq "$AMQP_PORT" rabbitmq_up start_rabbitmq
ensure_server mariadb "$MARIADB_PORT" mariadb_up start_mariadb mariadb_answers
if mariadb_users; then
	mariadb_up || die "mariadb: set up user $DB_USER but cannot log in as it over 127.0.0.1:$MARIADB_PORT"
	migrate_user_up || die "mariadb: set up the schema owner but cannot log in as it"
	log "mariadb: user $DB_USER, the schema owner and database $DB_NAME ready"
elif mariadb_up; then
	# Someone else's server that lets our user in: used as it is, never re-granted.
	status=0
	migrate_user_up || status=$?
	case $status in
	0) log "mariadb: user $DB_USER and the schema owner ready (not our server)" ;;
	2) log "mariadb: user $DB_USER ready (not our server: no schema owner, so migrations" \
		"run as $DB_USER; give VOLREG_DB_ADMIN_USER/VOLREG_DB_ADMIN_PASSWORD to set one up)" ;;
	*) die "mariadb: the schema owner in var/volreg.env (VOLREG_MYSQL_MIGRATE_USER) cannot log" \
		"in on 127.0.0.1:$MARIADB_PORT; run as an administrator:" \
		"$(bash scripts/mariadb-users.sh "$VAR/volreg.env" "$MARIADB_PORT" --sql)" ;;
	esac
else
	printf '%s\n' \
		"mariadb: 127.0.0.1:$MARIADB_PORT answers but does not let user $DB_USER in, and this" \
		"script cannot create it (not our server, no VOLREG_DB_ADMIN_USER/VOLREG_DB_ADMIN_PASSWORD)." \
		"Run this SQL as a MariaDB administrator (or set those two variables), then try again:" \
		"$(bash scripts/mariadb-users.sh "$VAR/volreg.env" "$MARIADB_PORT" --sql)" >&2
	exit 1
fi
