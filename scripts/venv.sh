#!/usr/bin/env bash
# Create .venv with Python 3.11 if needed and install the locked dependencies (hashes
# checked) and the project (editable) whenever pyproject.toml or the lock changed since the
# last successful install.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

VENV=.venv
STAMP=$VENV/.installed

is_py311() {
	"$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' >/dev/null 2>&1
}

find_python() {
	local c
	for c in python3.11 python3; do
		if have "$c" && is_py311 "$c"; then
			printf '%s\n' "$c"
			return 0
		fi
	done
	return 1
}

venv_ok() { [ -x "$VENV/bin/pip" ] && is_py311 "$VENV/bin/python"; }

if venv_ok; then
	log "venv: $VENV exists"
else
	if [ -e "$VENV" ]; then
		log "venv: $VENV is incomplete or not Python 3.11, recreating it"
		rm -rf "$VENV"
	fi
	if ! py=$(find_python); then
		# Debian 12 ships Python 3.11 as python3.
		apt_install python3 python3-venv
		hash -r
		py=$(find_python) || die "Python 3.11 is required (python3.11 or a python3 that is 3.11)"
	fi
	if ! "$py" -m venv "$VENV"; then
		# Without python3-venv, Debian's python creates a venv without pip and fails.
		rm -rf "$VENV"
		apt_install python3-venv
		"$py" -m venv "$VENV" || {
			rm -rf "$VENV"
			die "could not create $VENV with $py"
		}
	fi
	rm -f "$STAMP"
	log "venv: created $VENV with $("$VENV/bin/python" --version 2>&1)"
fi

LOCK=requirements-dev.lock
newest=pyproject.toml
[ "$LOCK" -nt "$newest" ] && newest=$LOCK
if [ "$newest" -nt "$STAMP" ]; then
	log "venv: installing the locked dependencies ($LOCK) and the project"
	# The stamp takes the newer file's time from before the install, so an edit made
	# while pip runs still triggers the next install.
	touch -r "$newest" "$STAMP.new"
	# Exactly the pinned versions, each distribution checked against its sha256 in the
	# lock (scripts/lock.sh writes it from pyproject.toml).
	"$VENV/bin/pip" install -q --require-hashes -r "$LOCK"
	# compat: the checkout itself goes on the venv's path, so the tools in loadtest/ (not
	# part of the package) run as `volreg loadtest` and `volreg chaos` too. --no-deps: every
	# dependency came from the lock above.
	"$VENV/bin/pip" install -q --no-deps -e . --config-settings editable_mode=compat
	mv -f "$STAMP.new" "$STAMP"
	log "venv: installed"
else
	log "venv: dependencies up to date"
fi
