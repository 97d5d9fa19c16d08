#!/usr/bin/env bash
# Stop the processes `make up` started (only those recorded in var/run/*.pid).
# Redis, MariaDB and RabbitMQ are left running.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

STOP_WAIT_S=${STOP_WAIT_S:-30}

gone() { ! pid_alive "$1"; }

stop() {
	local name=$1 pidfile="var/run/$1.pid" pid
	[ -f "$pidfile" ] || return 0
	if ! pid=$(our_pid "$name"); then
		log "$name: not running"
		rm -f "$pidfile"
		return 0
	fi
	log "$name: stopping (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until "$STOP_WAIT_S" gone "$pid"; then
		warn "$name: still running after ${STOP_WAIT_S}s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 5 gone "$pid" || warn "$name: pid $pid did not exit"
	fi
	rm -f "$pidfile"
	log "$name: stopped"
}

# The API first, so the consumer can still drain what it accepted.
names=(serve consume)
shopt -s nullglob
for f in var/run/*.pid; do
	n=$(basename "$f" .pid)
	case " ${names[*]} " in *" $n "*) ;; *) names+=("$n") ;; esac
done
for n in "${names[@]}"; do
	stop "$n"
done
log "down: done (Redis, MariaDB and RabbitMQ keep running)"
