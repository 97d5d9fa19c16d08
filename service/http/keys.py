"""Typed application state (aiohttp ``AppKey``s)."""

from __future__ import annotations

from aiohttp import web

from service.domain.tokens import TokenSigner
from service.http.probes import Readiness
from service.metrics import Metrics
from service.names import Names
from service.settings import Settings
from service.usecases.accounts import Accounts
from service.usecases.forms import Forms

SETTINGS = web.AppKey("settings", Settings)
NAMES = web.AppKey("names", Names)
SIGNER = web.AppKey("signer", TokenSigner)
FORMS = web.AppKey("forms", Forms)
ACCOUNTS = web.AppKey("accounts", Accounts)
READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", Metrics)
