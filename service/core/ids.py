"""Resident ID numbers (GB 11643, ISO 7064 MOD 11-2 check digit) and the shard derived from them."""

from __future__ import annotations

import operator
import re

from schemas.http import CANDIDATE_ID_PATTERN

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_ASCII_ZERO = 48 * sum(_WEIGHTS)
ID_SHAPE = re.compile(CANDIDATE_ID_PATTERN)


def check_digit(first17: str) -> str:
    """The MOD 11-2 check character for the first 17 digits."""
    if len(first17) != len(_WEIGHTS):
        raise ValueError("expected 17 digits")
    # On the ASCII codes, all in C (bulk imports check millions): each digit is its code - 48.
    return _CHECK[(sum(map(operator.mul, first17.encode(), _WEIGHTS)) - _ASCII_ZERO) % 11]


def id_problem(candidate_id: str) -> str | None:
    """Why ``candidate_id`` is not a valid resident ID, or ``None`` if it is."""
    if not ID_SHAPE.fullmatch(candidate_id):
        return "must be 17 digits followed by a digit or 'X'"
    if check_digit(candidate_id[:17]) != candidate_id[17]:
        return "check digit does not match"
    return None


def is_valid_id(candidate_id: str) -> bool:
    return id_problem(candidate_id) is None


def shard_of(candidate_id: str, shards: int) -> int:
    """Shard from the trailing digits (birth day + sequence code), uniform over ``shards``."""
    return int(candidate_id[12:17]) % shards


def make_id(region: int, birth: str, sequence: int) -> str:
    """Build a valid ID from a 6-digit region, a YYYYMMDD birth date and a 3-digit sequence."""
    first17 = f"{region:06d}{birth}{sequence:03d}"
    return first17 + check_digit(first17)
