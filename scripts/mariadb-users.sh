#!/usr/bin/env bash
# The MariaDB users of a checkout, on a server we may administer (root through the server's
# socket, or an administrator's credentials over TCP):
# - the application's user (VOLREG_MYSQL_DSN) with row privileges only — SELECT, INSERT,
#   UPDATE, DELETE — on its databases (`volreg%`, the suites' throw-away ones too): it cannot
#   create, alter or drop tables, nor grant anything;
# - the schema's owner (VOLREG_MYSQL_MIGRATE_USER/_PASSWORD, generated into the env file on
#   the first run), which `volreg migrate` and the suites' database set-up run as: all
#   privileges on those databases, none elsewhere, no GRANT OPTION.
# An older install (the application's user held ALL) is upgraded in place: its grants are
# replaced only when they differ, so a second run changes nothing and a running service
# loses no privilege it needs. Run `volreg migrate` after an upgrade: it re-creates, as the
# owner, triggers the application's user once defined (they run with their definer's
# privileges).
#   scripts/mariadb-users.sh ENV_FILE PORT SOCKET   as root through SOCKET
#   scripts/mariadb-users.sh ENV_FILE PORT          as VOLREG_DB_ADMIN_USER (_PASSWORD) over TCP
#   scripts/mariadb-users.sh ENV_FILE PORT --sql    print the SQL for an administrator instead
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ENV_FILE=$1
PORT=$2
SOCKET=${3:-}
HOSTS=(127.0.0.1 localhost)
ROW_PRIVILEGES="SELECT, INSERT, UPDATE, DELETE"

VOLREG_ENV_FILE=$ENV_FILE bash scripts/credentials.sh migrate
APP_DSN=$(sed -n 's/^VOLREG_MYSQL_DSN=//p' "$ENV_FILE" | tail -n 1)
OWNER=$(sed -n 's/^VOLREG_MYSQL_MIGRATE_USER=//p' "$ENV_FILE" | tail -n 1)
OWNER_PASSWORD=$(sed -n 's/^VOLREG_MYSQL_MIGRATE_PASSWORD=//p' "$ENV_FILE" | tail -n 1)
APP=$(url_user "$APP_DSN")
APP_PASSWORD=$(url_password "$APP_DSN")
DB=$(url_path "$APP_DSN")
[ -n "$APP" ] && [ -n "$DB" ] || die "mariadb: no VOLREG_MYSQL_DSN with a user and database in $ENV_FILE"
[ "$OWNER" != "$APP" ] || die "mariadb: the schema owner must not be the application's user ($APP)"

admin() {
	if [ -n "$SOCKET" ] && [ "$SOCKET" != --sql ]; then
		mariadb --no-defaults "--socket=$SOCKET" -uroot -N -B "$@"
	else
		[ -n "${VOLREG_DB_ADMIN_USER:-}" ] || die "mariadb: no socket and no VOLREG_DB_ADMIN_USER"
		MYSQL_PWD=${VOLREG_DB_ADMIN_PASSWORD:-} mariadb --no-defaults --protocol=tcp -h127.0.0.1 \
			-P"$PORT" -u"$VOLREG_DB_ADMIN_USER" -N -B "$@"
	fi
}

# Users and passwords, the owner's grant: all idempotent, nothing taken away.
users_sql() {
	printf 'CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4;\n' "$DB"
	local host
	for host in "${HOSTS[@]}"; do
		printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$APP" "$host" "$APP_PASSWORD"
		printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$APP" "$host" "$APP_PASSWORD"
		printf "CREATE USER IF NOT EXISTS '%s'@'%s' IDENTIFIED BY '%s';\n" "$OWNER" "$host" "$OWNER_PASSWORD"
		printf "ALTER USER '%s'@'%s' IDENTIFIED BY '%s';\n" "$OWNER" "$host" "$OWNER_PASSWORD"
		printf "GRANT ALL PRIVILEGES ON \`%s%%\`.* TO '%s'@'%s';\n" "$DB" "$OWNER" "$host"
	done
}

# The application's grants become exactly the row privileges (REVOKE ALL also drops any
# global or table privilege and GRANT OPTION; it succeeds on a user that holds none).
app_grants_sql() {
	printf "REVOKE ALL PRIVILEGES, GRANT OPTION FROM '%s'@'%s';\n" "$APP" "$1"
	printf "GRANT %s ON \`%s%%\`.* TO '%s'@'%s';\n" "$ROW_PRIVILEGES" "$DB" "$APP" "$1"
}

if [ "$SOCKET" = --sql ]; then
	users_sql
	for host in "${HOSTS[@]}"; do app_grants_sql "$host"; done
	exit 0
fi

admin -e "$(users_sql)"
for host in "${HOSTS[@]}"; do
	# SHOW GRANTS lists USAGE (the login itself, no privilege) first; everything else must be
	# the one row-privileges line.
	held=$(admin -e "SHOW GRANTS FOR '$APP'@'$host'" | grep -v '^GRANT USAGE ON \*\.\* TO ' || true)
	wanted="GRANT $ROW_PRIVILEGES ON \`$DB%\`.* TO \`$APP\`@\`$host\`"
	if [ "$held" != "$wanted" ]; then
		admin -e "$(app_grants_sql "$host")"
		log "mariadb: $APP@$host now holds $ROW_PRIVILEGES on $DB% only (held: ${held//$'\n'/; })"
	fi
done
log "mariadb: $APP may read and write rows of $DB%; $OWNER owns the schema (migrations)"
