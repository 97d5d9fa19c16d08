"""Checking path and query parameters against patterns, with 422s that name them."""

from __future__ import annotations

import re

from aiohttp import web

from service.core.errors import ValidationFailed


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
