"""The API on in-memory fakes of every port: ``create_app(settings, InMemory().adapters())``
serves requests with no server at all (Redis, MySQL and the broker are dicts and lists).

For tests of logic: routing, parsing, auth, validation, use-case rules. Anything that claims
durability, ordering or idempotency across processes is tested on the real servers."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, field

from service.accounts.fakes import InMemoryLoginAttempts, InMemoryStaff
from service.catalogue.fakes import (
    InMemoryBroadcast,
    InMemoryCatalogueCopies,
    InMemoryCatalogueTables,
)
from service.forms.fakes import InMemoryDatabase, InMemoryFormCache, InMemoryPublisher
from service.imports.fakes import InMemoryJobTable
from service.main.wiring import Adapters


@dataclass
class InMemory:
    """One fake per port; tests seed and inspect them directly."""

    cache: InMemoryFormCache = field(default_factory=InMemoryFormCache)
    broker: InMemoryPublisher = field(default_factory=InMemoryPublisher)
    db: InMemoryDatabase = field(default_factory=InMemoryDatabase)
    login_attempts: InMemoryLoginAttempts = field(default_factory=InMemoryLoginAttempts)
    copies: InMemoryCatalogueCopies = field(default_factory=InMemoryCatalogueCopies)
    broadcast: InMemoryBroadcast = field(default_factory=InMemoryBroadcast)
    jobs: InMemoryJobTable = field(default_factory=InMemoryJobTable)
    staff: InMemoryStaff = field(init=False)
    catalogue: InMemoryCatalogueTables = field(init=False)

    def __post_init__(self) -> None:
        self.staff = InMemoryStaff(self.db)
        self.catalogue = InMemoryCatalogueTables(self.db)

    def adapters(self) -> Adapters:
        return Adapters(
            form_cache=self.cache,
            open_publisher=lambda _metrics: nullcontext(self.broker),
            database=self.db,
            open_naive_store=lambda: nullcontext(self.db),
            login_attempts=self.login_attempts,
            token_generations=self.cache,
            staff=self.staff,
            catalogue_tables=self.catalogue,
            catalogue_copies=self.copies,
            open_broadcast=self.broadcast.open,
            candidates=self.db,
            exams=self.cache,
            import_jobs=self.jobs,
            probes={"redis": self.cache.ping, "broker": self.broker.ping, "mysql": self.db.ping},
        )
