#!/usr/bin/env bash
# Stop the processes `make up` and `make test` started, by the PIDs they recorded in
# var/run/: the API and consumer first, then the servers we started ourselves (a server
# someone else runs is never touched).
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

STOP_WAIT_S=${STOP_WAIT_S:-30}

gone() { ! pid_alive "$1"; }

# stop NAME LOOKUP...: stop the process LOOKUP prints (our recorded PID, checked to be ours),
# SIGTERM first (a clean shutdown for the API, the consumer and all three servers: RabbitMQ
# then syncs its quorum-queue registry), SIGKILL after STOP_WAIT_S.
stop() {
	local name=$1 pidfile="var/run/$1.pid" pid
	shift
	[ -f "$pidfile" ] || return 0
	if ! pid=$("$@"); then
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

# server_pid NAME PATTERN: the PID in var/run/NAME.pid when that process is alive and its
# command line matches PATTERN (a reused PID belongs to someone else).
server_pid() {
	local pid cmdline
	pid=$(cat "var/run/$1.pid" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	pid_alive "$pid" || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case $cmdline in *"$2"*) printf '%s\n' "$pid" ;; *) return 1 ;; esac
}

# The API first, so the consumer can still drain what it accepted.
names=(serve consume)
servers=(rabbitmq redis mariadb rocketmq-proxy rocketmq-namesrv)
shopt -s nullglob
for f in var/run/*.pid; do
	n=$(basename "$f" .pid)
	case " ${names[*]} ${servers[*]} " in *" $n "*) ;; *) names+=("$n") ;; esac
done
for n in "${names[@]}"; do
	stop "$n" our_pid "$n"
done
# Our RocketMQ (VOLREG_BROKER=rocketmq), by its pid files, when it runs.
bash scripts/rocketmq.sh down
stop rabbitmq server_pid rabbitmq "-home $(pwd -P)/var/rabbitmq/home"
stop redis server_pid redis redis-server
stop mariadb server_pid mariadb mariadbd
log "down: done"
