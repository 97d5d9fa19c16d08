"""Typed application state (aiohttp ``AppKey``s)."""

from __future__ import annotations

from aiohttp import web

from service.accounts.login import Accounts
from service.core.metrics import Metrics
from service.core.names import Names
from service.core.settings import Settings
from service.core.tokens import TokenSigner
from service.forms.save import Forms
from service.http.probes import Probes

SETTINGS = web.AppKey("settings", Settings)
NAMES = web.AppKey("names", Names)
SIGNER = web.AppKey("signer", TokenSigner)
FORMS = web.AppKey("forms", Forms)
ACCOUNTS = web.AppKey("accounts", Accounts)
PROBES = web.AppKey("probes", Probes)
METRICS = web.AppKey("metrics", Metrics)
