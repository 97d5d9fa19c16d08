"""Patterns the handlers check in paths and headers; the OpenAPI document publishes them."""

from __future__ import annotations

import re

BATCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")
IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,128}$")
