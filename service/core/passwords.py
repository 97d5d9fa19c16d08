"""argon2id password hashing; CPU-heavy, so callers run it off the event loop."""

from __future__ import annotations

import functools
import logging

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

log = logging.getLogger(__name__)

# Hashes come from imports too: their parameters are what a verification costs. One with a
# memory cost of gigabytes would make a single wrong password allocate that much.
MAX_MEMORY_KIB = 64 * 1024
MAX_TIME_COST = 10
MAX_PARALLELISM = 4


def hash_problem(stored: str) -> str | None:
    """Why ``stored`` is no argon2id hash this service verifies (None: it is). Cheap enough
    for every row of a million-row import: the parameters are parsed once per distinct set."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] or parts[1] != "argon2id" or parts[2] != "v=19":
        return "not an argon2id (v=19) hash"
    # Unpadded base64: 4 characters per 3 bytes.
    if len(parts[4]) * 3 // 4 < 8 or not 16 <= len(parts[5]) * 3 // 4 <= 64:
        return "salt or hash length out of range"
    return _parameters_problem(parts[3])


@functools.lru_cache(maxsize=64)
def _parameters_problem(parameters: str) -> str | None:
    try:
        values = dict(item.split("=", 1) for item in parameters.split(","))
        memory, time, lanes = int(values["m"]), int(values["t"]), int(values["p"])
    except (KeyError, ValueError):
        return "unreadable parameters"
    if memory > MAX_MEMORY_KIB:
        return f"memory cost {memory} KiB above {MAX_MEMORY_KIB}"
    if time > MAX_TIME_COST:
        return f"time cost {time} above {MAX_TIME_COST}"
    if lanes > MAX_PARALLELISM:
        return f"parallelism {lanes} above {MAX_PARALLELISM}"
    return None


class Passwords:
    def __init__(self, time_cost: int, memory_kib: int) -> None:
        if memory_kib > MAX_MEMORY_KIB or time_cost > MAX_TIME_COST:
            raise ValueError(
                f"VOLREG_ARGON2_MEMORY_KIB / VOLREG_ARGON2_TIME_COST: at most {MAX_MEMORY_KIB} / "
                f"{MAX_TIME_COST}, or the service would refuse its own hashes"
            )
        self._hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)
        # Verified when the account does not exist, so timing does not reveal which IDs exist.
        self._decoy = self._hasher.hash("decoy-password")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        if stored_hash:
            problem = hash_problem(stored_hash)
            if problem:
                # Checked against the decoy instead: same cost as a normal wrong password.
                log.error("refusing to verify a stored password hash: %s", problem)
                stored_hash = None
        try:
            return self._hasher.verify(stored_hash or self._decoy, password) and bool(stored_hash)
        except (VerificationError, InvalidHashError):
            return False
