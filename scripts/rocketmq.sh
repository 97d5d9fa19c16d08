#!/usr/bin/env bash
# RocketMQ 5 for VOLREG_BROKER=rocketmq: a name server and a proxy in local mode (the broker
# runs inside the proxy's JVM), synchronous flush to disk, on loopback ports of our own, with
# ROCKETMQ_HOME, the store and the logs under var/rocketmq and pid files in var/run.
#
#   scripts/rocketmq.sh up     fetch the jars if missing (Maven, deploy/rocketmq/pom.xml),
#                              start what is not running, create the stack's topics, and wait
#                              until a message sent through the proxy gets a receipt
#   scripts/rocketmq.sh down   stop the proxy and the name server we started (by PID)
#   scripts/rocketmq.sh status true while both of ours run
#   scripts/rocketmq.sh topics PREFIX COUNT   create PREFIX's topics with the admin tool
#
# Ports (override with the variables): name server 29876, broker 20911 (it also opens 20909
# and 20912), proxy gRPC 28081 (VOLREG_ROCKETMQ_ENDPOINTS points the service at it) and
# remoting 28080.
#
# Another instance (the chaos harness's, on ports of its own): ROCKETMQ_DIR for its
# ROCKETMQ_HOME, store, logs and pid files (the jars stay in var/rocketmq/lib, or
# ROCKETMQ_LIB), VOLREG_ENV_FILE for the settings file whose queue prefix gets topics.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

ROOT=$(pwd -P)
HOME_DIR=${ROCKETMQ_DIR:-$ROOT/var/rocketmq}
LIB=${ROCKETMQ_LIB:-$ROOT/var/rocketmq/lib}
if [ -n "${ROCKETMQ_DIR:-}" ]; then RUN_DIR=$HOME_DIR/run; else RUN_DIR=$ROOT/var/run; fi
ENV_FILE=${VOLREG_ENV_FILE:-var/volreg.env}
NAMESRV_PORT=${ROCKETMQ_NAMESRV_PORT:-29876}
BROKER_PORT=${ROCKETMQ_BROKER_PORT:-20911}
GRPC_PORT=${ROCKETMQ_GRPC_PORT:-28081}
REMOTING_PORT=${ROCKETMQ_REMOTING_PORT:-28080}
WAIT_S=${ROCKETMQ_WAIT_S:-120}
NAMESRV_HEAP=${ROCKETMQ_NAMESRV_HEAP:-256m}
BROKER_HEAP=${ROCKETMQ_BROKER_HEAP:-1g}
CLUSTER=volreg
BROKER_NAME=volreg-broker-a

mkdir -p "$RUN_DIR" "$HOME_DIR/conf" "$HOME_DIR/store" "$(dirname "$LIB")"

jars() {
	# A marker written after a complete copy: an interrupted download is simply redone.
	if [ -f "$LIB/.complete" ] && [ "$LIB/.complete" -nt deploy/rocketmq/pom.xml ]; then
		return 0
	fi
	have mvn || die "rocketmq: mvn not found (VOLREG_BROKER=rocketmq make deps installs it)"
	have java || die "rocketmq: java not found (VOLREG_BROKER=rocketmq make deps installs it)"
	log "rocketmq: fetching the jars with Maven (the first time downloads ~120 MB)"
	rm -rf "$LIB"
	local started=$SECONDS
	mvn -B -q -f deploy/rocketmq/pom.xml dependency:copy-dependencies \
		-DincludeScope=runtime "-DoutputDirectory=$LIB" >"$LIB.mvn.log" 2>&1 || {
		tail -n 30 "$LIB.mvn.log" >&2
		die "rocketmq: mvn could not fetch the jars (log in $LIB.mvn.log)"
	}
	touch "$LIB/.complete"
	log "rocketmq: jars in $LIB ($((SECONDS - started)) s)"
}

write_config() {
	cat >"$HOME_DIR/conf/namesrv.properties" <<-EOF
		# Written by scripts/rocketmq.sh.
		listenPort=$NAMESRV_PORT
		bindAddress=127.0.0.1
		rocketmqHome=$HOME_DIR
	EOF
	cat >"$HOME_DIR/conf/broker.conf" <<-EOF
		# Written by scripts/rocketmq.sh. The broker runs inside the proxy's JVM.
		brokerClusterName=$CLUSTER
		brokerName=$BROKER_NAME
		brokerId=0
		brokerRole=ASYNC_MASTER
		# A send is answered only once the message is on disk (fsync of the commit log).
		flushDiskType=SYNC_FLUSH
		syncFlushTimeout=5000
		brokerIP1=127.0.0.1
		listenPort=$BROKER_PORT
		bindAddress=127.0.0.1
		namesrvAddr=127.0.0.1:$NAMESRV_PORT
		# Re-register every 10 s (not 30): a restarted name server knows no route until then.
		registerBrokerTimerInterval=10000
		rocketmqHome=$HOME_DIR
		storePathRootDir=$HOME_DIR/store
		storePathCommitLog=$HOME_DIR/store/commitlog
		# Small files so it fits beside everything else on a small machine.
		mappedFileSizeCommitLog=67108864
		mappedFileSizeConsumeQueue=600000
		mappedFileSizeTimerLog=8388608
		maxHashSlotNum=50000
		maxIndexNum=200000
		warmMapedFileEnable=false
		transientStorePoolEnable=false
		diskMaxUsedSpaceRatio=95
		# gRPC clients never create topics; scripts/rocketmq.sh and the service create theirs.
		autoCreateTopicEnable=false
		autoCreateSubscriptionGroup=true
		sendMessageThreadPoolNums=2
		useReentrantLockWhenPutMessage=true
		# Transactional saves (VOLREG_ROCKETMQ_TRANSACTIONS): a half message neither committed
		# nor rolled back after 6 s is checked back with a producer every 5 s (the default is
		# 30 s), so an orphan left by a killed API process is settled within about 11 s.
		transactionTimeOut=6000
		transactionCheckInterval=5000
	EOF
	# useEndpointPortFromRequest: routes name the address the client asked through (a load
	# balancer, or the test suite's cuttable proxy), not the proxy's own port.
	cat >"$HOME_DIR/conf/proxy.json" <<-EOF
		{
		  "rocketMQClusterName": "$CLUSTER",
		  "proxyMode": "local",
		  "grpcServerPort": $GRPC_PORT,
		  "remotingListenPort": $REMOTING_PORT,
		  "namesrvAddr": "127.0.0.1:$NAMESRV_PORT",
		  "minInvisibleTimeMillsForRecv": 1000,
		  "grpcClientConsumerMinLongPollingTimeoutMillis": 500,
		  "enableTopicMessageTypeCheck": true,
		  "useEndpointPortFromRequest": true
		}
	EOF
}

# jvm NAME HEAP MAINCLASS ARGS...: start a JVM in its own session, its PID in var/run/NAME.pid.
jvm() {
	local name=$1 heap=$2
	shift 2
	# user.home: the logback configurations shipped in the jars log to ~/logs/rocketmqlogs.
	ROCKETMQ_HOME=$HOME_DIR nohup setsid java -server "-Xms$heap" "-Xmx$heap" \
		-XX:+UseG1GC -XX:MaxDirectMemorySize=256m -XX:-OmitStackTraceInFastThrow \
		"-Duser.home=$HOME_DIR" "-Drocketmq.home.dir=$HOME_DIR" -Dvolreg.rocketmq="$name" \
		-cp "$LIB/*" "$@" </dev/null >>"$HOME_DIR/$name.out" 2>&1 &
	echo "$!" >"$RUN_DIR/rocketmq-$name.pid"
}

# alive NAME: our JVM recorded in var/run/rocketmq-NAME.pid runs.
alive() {
	local pid cmdline
	pid=$(cat "$RUN_DIR/rocketmq-$1.pid" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	pid_alive "$pid" || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	case $cmdline in *"-Dvolreg.rocketmq=$1 "*"$HOME_DIR"*) return 0 ;; esac
	case $cmdline in *"$HOME_DIR"*"-Dvolreg.rocketmq=$1 "*) return 0 ;; esac
	return 1
}

start_one() {
	local name=$1 port=$2
	shift 2
	if alive "$name"; then
		log "rocketmq-$name: running (ours)"
		return 0
	fi
	if tcp_open 127.0.0.1 "$port"; then
		die "rocketmq-$name: 127.0.0.1:$port is taken by a process that is not ours"
	fi
	log "rocketmq-$name: starting (log $HOME_DIR/$name.out, $HOME_DIR/logs/)"
	jvm "$name" "$@"
	wait_until "$WAIT_S" tcp_open 127.0.0.1 "$port" ||
		die "rocketmq-$name: not listening on $port after ${WAIT_S}s; see $HOME_DIR/$name.out"
}

# admin ARGS...: the tools' admin command against our name server. It exits 0 even when the
# command failed, so callers check its output.
admin() {
	ROCKETMQ_HOME=$HOME_DIR java -Xms64m -Xmx128m -XX:TieredStopAtLevel=1 \
		"-Duser.home=$HOME_DIR" "-Drocketmq.home.dir=$HOME_DIR" -cp "$LIB/*" \
		org.apache.rocketmq.tools.command.MQAdminStartup "$@" -n "127.0.0.1:$NAMESRV_PORT" 2>&1
}

# create_topic NAME TYPE: NORMAL, FIFO or TRANSACTION (a gRPC producer must match it).
create_topic() {
	local out
	out=$(admin updateTopic -c "$CLUSTER" -t "$1" -r 1 -w 1 -a "+message.type=$2") || true
	case $out in
	*success*) return 0 ;;
	*) printf '%s\n' "$out" >&2 && return 1 ;;
	esac
}

# topics PREFIX COUNT: a queue prefix's topics, named as service/storage/rocket.py names them:
# one per shard group, the dead letters, the probe, all of message type NORMAL (a topic takes
# one type; a gRPC producer's messages must match it).
topics() {
	local prefix=$1 count=$2 i names=() type=NORMAL
	# The broker keeps its topics in the store; so does this stamp (each admin call is a JVM).
	local stamp="$HOME_DIR/store/.topics-$prefix-$count-$type"
	if [ -f "$stamp" ]; then
		log "rocketmq: topics of $prefix exist"
		return 0
	fi
	for ((i = 0; i < count; i++)); do
		create_topic "${prefix}_forms_$i" "$type" || return 1
		names+=("${prefix}_forms_$i")
	done
	create_topic "${prefix}_dead" NORMAL || return 1
	create_topic "${prefix}_probe" NORMAL || return 1
	touch "$stamp"
	log "rocketmq: topics ${names[*]} ${prefix}_dead ${prefix}_probe ready"
}

broker_registered() {
	admin clusterList | grep -q "$BROKER_NAME"
}

up() {
	jars
	write_config
	start_one namesrv "$NAMESRV_PORT" "$NAMESRV_HEAP" org.apache.rocketmq.namesrv.NamesrvStartup \
		-c "$HOME_DIR/conf/namesrv.properties"
	start_one proxy "$GRPC_PORT" "$BROKER_HEAP" org.apache.rocketmq.proxy.ProxyStartup \
		-pm local -bc "$HOME_DIR/conf/broker.conf" -pc "$HOME_DIR/conf/proxy.json" \
		-n "127.0.0.1:$NAMESRV_PORT"
	wait_until "$WAIT_S" broker_registered ||
		die "rocketmq: the broker did not register with the name server; see $HOME_DIR/logs/"
	set -a
	# shellcheck source=/dev/null
	[ -f "$ENV_FILE" ] && . "$ENV_FILE"
	set +a
	topics "${VOLREG_QUEUE_PREFIX:-volreg}" "${VOLREG_QUEUES:-4}" ||
		die "rocketmq: could not create the topics (admin output above)"
	# Readiness is a real route: a message sent through the proxy that gets a receipt. The
	# probe needs the project's virtualenv (make venv); without it the open ports must do.
	if [ -x .venv/bin/python ] && .venv/bin/python -c 'import rocketmq' 2>/dev/null; then
		wait_until 60 .venv/bin/python -m service.storage.rocket_probe \
			"127.0.0.1:$GRPC_PORT" "${VOLREG_QUEUE_PREFIX:-volreg}_probe" ||
			die "rocketmq: no send receipt through 127.0.0.1:$GRPC_PORT; see $HOME_DIR/logs/"
		log "rocketmq: ready (a probe message got its send receipt)"
	else
		warn "rocketmq: no .venv yet, readiness checked by open ports only"
	fi
}

stop_one() {
	local name=$1 pid
	if ! alive "$name"; then
		rm -f "$RUN_DIR/rocketmq-$name.pid"
		return 0
	fi
	pid=$(cat "$RUN_DIR/rocketmq-$name.pid")
	log "rocketmq-$name: stopping (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	if ! wait_until 30 gone "$pid"; then
		warn "rocketmq-$name: still running after 30s, killing it"
		kill -KILL "$pid" 2>/dev/null || true
		wait_until 5 gone "$pid" || true
	fi
	rm -f "$RUN_DIR/rocketmq-$name.pid"
}

gone() { ! pid_alive "$1"; }

case ${1:-} in
up) up ;;
status) alive proxy && alive namesrv ;;
down)
	stop_one proxy
	stop_one namesrv
	;;
topics)
	[ "$#" -eq 3 ] || die "usage: $0 topics PREFIX COUNT"
	topics "$2" "$3"
	;;
*) die "usage: $0 up|down|status|topics PREFIX COUNT" ;;
esac
