"""After a round: every acknowledged save is in MySQL and Redis (same or newer version),
Redis equals MySQL for every form, and every stored copy is a save some client sent."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from loadtest.chaos_load import Ledger, salt_of
from reconciler.mysql_archive import FormArchive
from reconciler.redis_index import FormIndex
from schemas.records import FormKey, FormRecord

_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Check:
    lost: int  # acknowledged saves missing (older or no copy) in MySQL or Redis
    mismatched: int  # forms whose Redis copy differs from MySQL's
    phantom: int  # stored copies no client sent, or with another version than acknowledged
    order_errors: int  # acknowledged versions of a form that did not strictly increase
    behind_in_mysql: int  # acknowledged saves MySQL does not hold yet (drain progress)

    @property
    def clean(self) -> bool:
        return not (self.lost or self.mismatched or self.phantom or self.order_errors)


async def mysql_copies(archive: FormArchive, keys: list[FormKey]) -> dict[FormKey, FormRecord]:
    found: dict[FormKey, FormRecord] = {}
    for i in range(0, len(keys), _CHUNK):
        found |= {r.key: r for r in await archive.records(keys[i : i + _CHUNK])}
    return found


async def redis_copies(index: FormIndex, keys: list[FormKey]) -> dict[FormKey, FormRecord]:
    found: dict[FormKey, FormRecord] = {}
    for i in range(0, len(keys), 50):
        chunk = keys[i : i + 50]
        for key, record in zip(chunk, await asyncio.gather(*map(index.read, chunk)), strict=True):
            if record is not None:
                found[key] = record
    return found


def behind(ledger: Ledger, keys: list[FormKey], mysql: dict[FormKey, FormRecord]) -> int:
    return sum(1 for a in ledger.acked if _version(mysql.get(keys[a.form])) < a.version)


def _version(record: FormRecord | None) -> int:
    return record.version if record else 0


def check(
    ledger: Ledger,
    keys: list[FormKey],
    mysql: dict[FormKey, FormRecord],
    redis: dict[FormKey, FormRecord],
) -> Check:
    lost = sum(
        1
        for a in ledger.acked
        if min(_version(mysql.get(keys[a.form])), _version(redis.get(keys[a.form]))) < a.version
    )
    mismatched = sum(1 for key in keys if mysql.get(key) != redis.get(key))
    acked_version: dict[tuple[int, int], int] = {(a.form, a.salt): a.version for a in ledger.acked}
    phantom = 0
    for form, key in enumerate(keys):
        for copy in (mysql.get(key), redis.get(key)):
            if copy is None:
                continue
            salt = salt_of(copy.payload)
            sent = salt in ledger.attempted.get(form, ())
            acked = acked_version.get((form, salt))
            if not sent or (acked is not None and acked != copy.version):
                phantom += 1
    order_errors = 0
    last: dict[int, int] = {}
    for a in ledger.acked:  # in acknowledgement order; each form has one client
        if a.version <= last.get(a.form, 0):
            order_errors += 1
        last[a.form] = a.version
    return Check(lost, mismatched, phantom, order_errors, behind(ledger, keys, mysql))
