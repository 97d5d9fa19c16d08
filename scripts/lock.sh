#!/usr/bin/env bash
# Regenerate the lock files from pyproject.toml: every dependency pinned, with the sha256 of
# each of its distributions on PyPI. scripts/venv.sh installs from requirements-dev.lock and
# the image from requirements.lock, with pip's --require-hashes. Run this after changing a
# dependency in pyproject.toml and commit both files.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh

tools=$(mktemp -d)
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/pip" install -q pip-tools
common=(--quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
	--no-emit-find-links --no-emit-trusted-host)
"$tools/bin/pip-compile" "${common[@]}" --output-file requirements.lock pyproject.toml
"$tools/bin/pip-compile" "${common[@]}" --extra dev --extra loadtest \
	--output-file requirements-dev.lock pyproject.toml
# The dev extras name the project itself (volreg[loadtest]): it is installed from the
# checkout, not from a lock, so its entry goes.
"$tools/bin/python" - <<'PY'
import re
from pathlib import Path

path = Path("requirements-dev.lock")
text = path.read_text()
text = re.sub(r"# WARNING: pip install will require.*?\nvolreg @ [^\n]*\n(    #[^\n]*\n)*", "", text, flags=re.S)
path.write_text(text)
PY
log "lock: wrote requirements.lock and requirements-dev.lock"
