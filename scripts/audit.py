"""`make audit` (and the last step of `make lint`): pip-audit over a lock file, which never
passes without auditing.

pip-audit by itself reports a dependency its vulnerability service does not know as skipped
("not found on PyPI and could not be audited") and still exits 0 with "No known
vulnerabilities found" — where the service answers 404 to every per-version query, it would
pass having checked nothing. Here the audit passes only when every pinned dependency was
looked up and none has a known vulnerability; a dependency not audited, or a service that
cannot be reached, fails with one line saying the dependencies were NOT audited.
VOLREG_AUDIT=skip skips the audit on purpose, and says so loudly.

    python scripts/audit.py [LOCK_FILE]     (default requirements.lock; needs pip-audit)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

SKIP = "VOLREG_AUDIT"
_HINT = f"(set {SKIP}=skip to go on without the audit, knowingly)"


def main(argv: list[str]) -> int:
    lock = argv[1] if len(argv) > 1 else "requirements.lock"
    if os.environ.get(SKIP) == "skip":
        print(
            f"audit: ******** SKIPPED ({SKIP}=skip): the dependencies in {lock} were NOT "
            "audited for known vulnerabilities ********",
            file=sys.stderr,
        )
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "audit.json"
        done = subprocess.run(
            [
                sys.executable, "-m", "pip_audit",
                "--requirement", lock, "--require-hashes", "--disable-pip",
                "--progress-spinner", "off", "--format", "json", "--output", str(report),
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )  # fmt: skip
        try:
            dependencies = json.loads(report.read_text())["dependencies"]
        except (OSError, ValueError, KeyError):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            print(
                f"audit: FAILED: the dependencies in {lock} were NOT audited: pip-audit gave no "
                f"report (vulnerability service unreachable? it said: {last[:200]}) {_HINT}",
                file=sys.stderr,
            )
            return 1
    return verdict(lock, dependencies)


def verdict(lock: str, dependencies: list[dict[str, Any]]) -> int:
    """0 only when every dependency was audited and none has a known vulnerability."""
    skipped = [d for d in dependencies if d.get("skip_reason")]
    vulnerable = [d for d in dependencies if d.get("vulns")]
    for dep in vulnerable:
        ids = ", ".join(str(v.get("id")) for v in dep["vulns"])
        print(f"audit: {dep['name']} {dep.get('version', '')}: {ids}", file=sys.stderr)
    if skipped:
        first = str(skipped[0]["skip_reason"])
        print(
            f"audit: FAILED: {len(skipped)} of {len(dependencies)} dependencies in {lock} were "
            f"NOT audited: the vulnerability service does not answer for them (first: "
            f"{first[:160]}) {_HINT}",
            file=sys.stderr,
        )
        return 1
    if not dependencies:
        print(
            f"audit: FAILED: no dependencies found in {lock}: nothing was audited", file=sys.stderr
        )
        return 1
    if vulnerable:
        print(
            f"audit: FAILED: {len(vulnerable)} dependencies in {lock} have known vulnerabilities",
            file=sys.stderr,
        )
        return 1
    print(f"audit: {len(dependencies)} dependencies audited, no known vulnerabilities")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
