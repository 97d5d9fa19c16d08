"""Patterns the handlers check in paths, queries and headers; the OpenAPI document publishes
the same ones, so what it allows is what the handlers accept. Optional query parameters are
checked with :func:`optional` (an empty or absent value means "not given")."""

from __future__ import annotations

import re

from service.core import ids

BATCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
BATCH_RULE = "must be 1-32 lowercase letters, digits or '-'"
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
CANDIDATE_ID = ids.ID_SHAPE
CANDIDATE_ID_RULE = "must be 17 digits followed by a digit or 'X'"
INSTITUTION = re.compile(r"^[0-9]{5}$")
SCHOOL = re.compile(r"^[0-9]{1,16}$")
JOB = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
JOB_RULE = "1-64 letters, digits, '_' or '-'"
FILE_NAME = re.compile(r"^[\w.-]{1,128}$")
FLAG = re.compile(r"^[01]$")
LINE = re.compile(r"^[0-9]{1,12}$")
HISTORY_CURSOR = re.compile(r"^[0-9]{1,19}$")
# A page size: 1-3 digits, its range checked after (see params.limit_param).
LIMIT = re.compile(r"^[0-9]{1,3}$")


def optional(pattern: re.Pattern[str]) -> re.Pattern[str]:
    """``pattern`` or the empty string."""
    return re.compile(f"^$|{pattern.pattern}")
