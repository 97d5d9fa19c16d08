"""Typed application state (aiohttp ``AppKey``s): settings and names, then each feature's
use case."""

from __future__ import annotations

from aiohttp import web

from service.accounts.login import Accounts
from service.catalogue.catalogue import Catalogue
from service.console.status import Pipeline
from service.core.metrics import Metrics
from service.core.names import Names
from service.core.revocation import Revocations
from service.core.settings import Settings
from service.core.tokens import TokenSigner
from service.filing.history import History
from service.filing.progress import Progress
from service.forms.save import Forms
from service.forms.submit import Submissions
from service.hot.aggregate import Aggregator
from service.hot.events import HotEvents
from service.http.clients import Network
from service.http.probes import Readiness
from service.imports.jobs import JobTable
from service.imports.pipeline import Importer
from service.schools.schools import Schools

SETTINGS = web.AppKey("settings", Settings)
NAMES = web.AppKey("names", Names)
SIGNER = web.AppKey("signer", TokenSigner)
FORMS = web.AppKey("forms", Forms)
ACCOUNTS = web.AppKey("accounts", Accounts)
READINESS = web.AppKey("readiness", Readiness)
METRICS = web.AppKey("metrics", Metrics)
CATALOGUE = web.AppKey("catalogue", Catalogue)
SCHOOLS = web.AppKey("schools", Schools)
IMPORTER = web.AppKey("importer", Importer)
IMPORT_JOBS: web.AppKey[JobTable] = web.AppKey("import_jobs")
HOT_EVENTS = web.AppKey("hot_events", HotEvents)
HOT_VIEW = web.AppKey("hot_view", Aggregator)
PROGRESS = web.AppKey("progress", Progress)
HISTORY = web.AppKey("history", History)
SUBMISSIONS = web.AppKey("submissions", Submissions)
PIPELINE = web.AppKey("pipeline", Pipeline)
# Networks of the proxies whose X-Forwarded-For is believed (VOLREG_TRUSTED_PROXIES).
PROXIES = web.AppKey("proxies", list[Network])
REVOCATIONS = web.AppKey("revocations", Revocations)
