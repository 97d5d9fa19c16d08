"""Typed application state (aiohttp ``AppKey``s)."""

from __future__ import annotations

from aiohttp import web

from service.domain.tokens import TokenSigner
from service.http.clients import Network
from service.http.probes import Probes
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
PROBES = web.AppKey("probes", Probes)
METRICS = web.AppKey("metrics", Metrics)
# Networks of the proxies whose X-Forwarded-For is believed (VOLREG_TRUSTED_PROXIES).
PROXIES = web.AppKey("proxies", list[Network])
