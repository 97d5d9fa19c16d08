#!/usr/bin/env bash
# Create var/volreg.env on the first run: the token secret and credentials of our own for
# Redis (a password), RabbitMQ (a user and a vhost, never guest) and MariaDB (the
# application's user), as the URLs every volreg process reads. An existing file is kept;
# settings missing from an older one are added. Readable by its owner only.
#   scripts/credentials.sh            all of the above
#   scripts/credentials.sh migrate    only the MariaDB schema owner's user and password, which
#                                     scripts/mariadb-users.sh adds when it can create that user
# VOLREG_ENV_FILE names another file to write (as every volreg command reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ENV_FILE=${VOLREG_ENV_FILE:-var/volreg.env}
mkdir -p "$(dirname "$ENV_FILE")"

secret() { od -An -N"$1" -tx1 /dev/urandom | tr -d ' \n'; }

# add NAME VALUE: append NAME=VALUE unless the file already sets NAME.
add() {
	grep -q "^$1=" "$ENV_FILE" 2>/dev/null && return 0
	printf '%s=%s\n' "$1" "$2" >>"$ENV_FILE"
	added+=("$1")
}

added=()
(umask 077 && touch "$ENV_FILE")
chmod 600 "$ENV_FILE"
grep -q '^# ' "$ENV_FILE" || printf '%s\n' \
	"# volreg settings for this checkout, written by scripts/credentials.sh (make up / make test)." \
	"# Every volreg command run from here reads it; variables already set in the environment win." \
	>>"$ENV_FILE"
if [ "${1:-}" = migrate ]; then
	add VOLREG_MYSQL_MIGRATE_USER volreg-migrate
	add VOLREG_MYSQL_MIGRATE_PASSWORD "$(secret 16)"
	[ "${#added[@]}" -eq 0 ] || log "config: wrote ${added[*]} to $ENV_FILE"
	exit 0
fi
add VOLREG_TOKEN_SECRET "$(secret 32)"
# This checkout is a development machine: a weak token secret set by hand is warned about
# instead of refused (a deployment never sets this).
add VOLREG_DEV_MODE 1
add VOLREG_REDIS_URL "redis://:$(secret 16)@127.0.0.1:6379/0"
add VOLREG_AMQP_URL "amqp://volreg:$(secret 16)@127.0.0.1:5672/volreg"
add VOLREG_MYSQL_DSN "mysql://volreg:$(secret 16)@127.0.0.1:3306/volreg"
if [ "${#added[@]}" -gt 0 ]; then
	log "config: wrote ${added[*]} to $ENV_FILE"
fi
