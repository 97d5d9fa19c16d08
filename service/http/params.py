"""Checking path and query parameters against patterns, with 422s that name them."""

from __future__ import annotations

import re

from aiohttp import web

from service.core.errors import ValidationFailed
from service.http.patterns import LIMIT, optional

_OPTIONAL_LIMIT = optional(LIMIT)


def invalid(path: str, message: str) -> ValidationFailed:
    return ValidationFailed(f"{path}: {message}", details=[{"path": path, "message": message}])


def path_param(request: web.Request, name: str, pattern: re.Pattern[str], rule: str) -> str:
    value = request.match_info[name]
    if not pattern.fullmatch(value):
        raise invalid(f"path.{name}", rule)
    return value


def query_param(request: web.Request, name: str, pattern: re.Pattern[str], rule: str) -> str:
    """The parameter ('' when absent; ``pattern`` decides whether that is allowed)."""
    value = request.query.get(name, "")
    if not pattern.fullmatch(value):
        raise invalid(f"query.{name}", rule)
    return value


def limit_param(request: web.Request, maximum: int, default: int) -> int:
    """``?limit=``: a page size of 1-``maximum`` (``default`` when absent)."""
    raw = query_param(request, "limit", _OPTIONAL_LIMIT, f"1-{maximum}")
    limit = int(raw) if raw else default
    if not 1 <= limit <= maximum:
        raise invalid("query.limit", f"1-{maximum}")
    return limit
