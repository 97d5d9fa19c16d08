"""The chaos harness's verdict on the stores, from the ledger of what the clients sent and
what was acknowledged.

Per acknowledged save: the store holds that version or a newer one, else it is *lost*. Per
form: the stored content must come from an attempt at least as new as the newest
acknowledged one (each form has one client saving one attempt at a time, and salts grow with
every attempt, so a larger salt is a later attempt); a copy at the acknowledged version must
be exactly that attempt, and a copy from a later (unacknowledged) attempt must carry a newer
version. Anything else is *content mismatched*: an older attempt's content under a new
version, another attempt's content under the acknowledged version, or bytes no client sent.
Checking the version alone would let such a copy hide the loss of the acknowledged content.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from loadtest.chaos_load import Ack, Ledger, salt_of
from reconciler.mysql_archive import FormArchive
from reconciler.redis_index import FormIndex
from schemas.records import FormKey, FormRecord

_CHUNK = 500
_REDIS_CHUNK = 50

Copies = dict[FormKey, FormRecord]


@dataclass(frozen=True, slots=True)
class Check:
    """Indices into ``ledger.acked`` and form numbers, so that rounds can be merged without
    counting one loss twice."""

    lost: frozenset[int]  # acknowledged saves a store holds no copy of (or only an older one)
    content: frozenset[int]  # forms whose stored content is not from a new enough attempt
    mismatched: frozenset[int]  # forms whose Redis copy differs from MySQL's
    order_errors: int  # acknowledged versions of a form that did not strictly increase

    @property
    def clean(self) -> bool:
        return not (self.lost or self.content or self.mismatched or self.order_errors)


async def mysql_copies(archive: FormArchive, keys: list[FormKey]) -> Copies:
    found: Copies = {}
    for i in range(0, len(keys), _CHUNK):
        found |= {r.key: r for r in await archive.records(keys[i : i + _CHUNK])}
    return found


async def redis_copies(index: FormIndex, keys: list[FormKey]) -> Copies:
    found: Copies = {}
    for i in range(0, len(keys), _REDIS_CHUNK):
        chunk = keys[i : i + _REDIS_CHUNK]
        for key, record in zip(chunk, await asyncio.gather(*map(index.read, chunk)), strict=True):
            if record is not None:
                found[key] = record
    return found


def newest_acks(ledger: Ledger) -> dict[int, Ack]:
    """Per form its last acknowledged save (acknowledgement order: one client per form)."""
    return {a.form: a for a in ledger.acked}


def lost_in(ledger: Ledger, keys: list[FormKey], copies: Copies) -> frozenset[int]:
    return frozenset(
        i for i, a in enumerate(ledger.acked) if _version(copies.get(keys[a.form])) < a.version
    )


def content_errors(
    ledger: Ledger, keys: list[FormKey], copies: Copies, forms: Iterable[int] | None = None
) -> frozenset[int]:
    """Forms (all, or ``forms``) whose copy in ``copies`` is not content the newest
    acknowledged save allows. A form without a copy is a loss, not a content error."""
    newest = newest_acks(ledger)
    acked_as = {(a.form, a.salt): a.version for a in ledger.acked}
    bad = set()
    for form in range(len(keys)) if forms is None else forms:
        copy = copies.get(keys[form])
        if copy is None:
            continue
        try:
            salt = salt_of(copy.payload)
        except (ValueError, KeyError, IndexError, TypeError):
            bad.add(form)  # not a payload of ours at all
            continue
        if salt not in ledger.attempted.get(form, ()) or not _allowed(
            copy.version, salt, newest.get(form), acked_as.get((form, salt))
        ):
            bad.add(form)
    return frozenset(bad)


def _allowed(version: int, salt: int, newest: Ack | None, acked_with: int | None) -> bool:
    """May a copy (``version``, content of attempt ``salt``) stand, given the form's newest
    acknowledged save? ``acked_with``: the version attempt ``salt`` was acknowledged with."""
    if acked_with is not None and acked_with != version:
        return False  # an acknowledged attempt's content under another version
    if newest is None or version < newest.version:
        return True  # nothing acknowledged yet, or a loss (counted as lost, not here)
    if salt < newest.salt:
        return False  # an older attempt's content at or above the acknowledged version
    if salt == newest.salt:
        return True  # the acknowledged save itself (its version was checked above)
    return version > newest.version  # a later attempt must carry a newer version


def order_errors(ledger: Ledger) -> int:
    errors = 0
    last: dict[int, int] = {}
    for a in ledger.acked:
        if a.version <= last.get(a.form, 0):
            errors += 1
        last[a.form] = a.version
    return errors


def before_repair(ledger: Ledger, keys: list[FormKey], mysql: Copies) -> Check:
    """MySQL alone, as the consumers left it: Redis may rightly be behind here (wiped, or an
    API killed between confirm and commit), MySQL may not."""
    return Check(
        lost_in(ledger, keys, mysql),
        content_errors(ledger, keys, mysql),
        frozenset(),
        order_errors(ledger),
    )


def check(ledger: Ledger, keys: list[FormKey], mysql: Copies, redis: Copies) -> Check:
    """Both stores after repair: nothing lost in either, content right in both, equal."""
    return Check(
        lost_in(ledger, keys, mysql) | lost_in(ledger, keys, redis),
        content_errors(ledger, keys, mysql) | content_errors(ledger, keys, redis),
        frozenset(f for f, key in enumerate(keys) if mysql.get(key) != redis.get(key)),
        order_errors(ledger),
    )


def _version(record: FormRecord | None) -> int:
    return record.version if record else 0
