# Shared helpers for the scripts in this directory. Source it; do not run it.
# shellcheck shell=bash

# Server binaries live in sbin, which is often not on a normal user's PATH.
case ":$PATH:" in
*:/usr/sbin:*) ;;
*) PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin" ;;
esac
export PATH

log() { printf '%s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

have() { command -v "$1" >/dev/null 2>&1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root: directly when we are root, through sudo otherwise.
as_root() {
	if is_root; then
		"$@"
	elif have sudo; then
		sudo "$@"
	else
		die "root is needed for: $*  (run as root or install sudo)"
	fi
}

# Install Debian packages. `apt-get update` runs at most once an hour for this checkout (a
# stamp in var/run/), so the scripts of one `make` run share it.
APT_STAMP=var/run/apt-updated
apt_install() {
	[ "$#" -gt 0 ] || return 0
	have apt-get || die "apt-get not found; install these yourself: $*"
	if [ -z "$(find "$APT_STAMP" -mmin -60 2>/dev/null)" ]; then
		log "apt: updating package lists"
		as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
		mkdir -p "$(dirname "$APT_STAMP")" && touch "$APT_STAMP"
	fi
	log "apt: installing $*"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# tcp_open HOST PORT: true when something accepts TCP connections there.
tcp_open() {
	# shellcheck disable=SC2016  # expanded by the inner bash
	timeout 3 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$1" "$2" 2>/dev/null
}

# wait_until SECONDS CMD...: run CMD every second until it succeeds or time runs out.
wait_until() {
	local limit=$1 deadline
	shift
	deadline=$((SECONDS + limit))
	until "$@"; do
		[ "$SECONDS" -lt "$deadline" ] || return 1
		sleep 1
	done
}

# pid_alive PID: true while that process exists and has not exited (a zombie, exited but
# not yet reaped by its parent, counts as gone).
pid_alive() {
	kill -0 "$1" 2>/dev/null || return 1
	local stat
	stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
	stat=${stat##*) }
	[ "${stat%% *}" != Z ]
}

# our_pid NAME: print the PID in var/run/NAME.pid and succeed when that process is
# alive and is the volreg NAME process we started (guards against reused PIDs).
our_pid() {
	local name=$1 pid cmdline
	pid=$(cat "var/run/$name.pid" 2>/dev/null) || return 1
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	pid_alive "$pid" || return 1
	if [ -r "/proc/$pid/cmdline" ]; then
		cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
		case $cmdline in
		*volreg*"$name"*) ;;
		*) return 1 ;;
		esac
	fi
	printf '%s\n' "$pid"
}

# Parts of a URL such as scheme://user:password@host:port/path, as written by
# scripts/credentials.sh (no percent-encoding needed: generated passwords are hex).
_url_auth() {
	local rest=${1#*://}
	case $rest in *@*) printf '%s\n' "${rest%%@*}" ;; *) printf '\n' ;; esac
}
url_user() {
	local auth
	auth=$(_url_auth "$1")
	printf '%s\n' "${auth%%:*}"
}
url_password() {
	local auth
	auth=$(_url_auth "$1")
	case $auth in *:*) printf '%s\n' "${auth#*:}" ;; *) printf '\n' ;; esac
}
url_path() {
	local rest=${1#*://}
	rest=${rest#*/}
	printf '%s\n' "${rest%%\?*}"
}
