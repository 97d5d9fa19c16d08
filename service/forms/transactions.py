"""Whether a save's Redis commit happened: what decides a transactional half message's fate.

The save path commits a half message after the Redis commit and rolls it back when the commit
is refused; the broker asks back (``check-back``) about one left undecided, when the API
process died in between or the broker's answer was lost. The answer must not deliver a save
nobody can see: COMMIT only when Redis holds that very version, or MySQL does (Redis lost the
form since); ROLLBACK when Redis holds another version or none; no answer while Redis cannot
be read, so the broker asks again later instead of guessing.
"""

from __future__ import annotations

from schemas.records import FormRecord
from service.core.errors import DatabaseUnavailable, StoreUnavailable
from service.core.ports import Database, FormCache


async def committed(cache: FormCache, db: Database, record: FormRecord) -> bool | None:
    """True when the commit of ``record`` happened, False when it did not, None when Redis
    cannot tell and MySQL does not hold it."""
    try:
        held = await cache.read(record.key)
    except StoreUnavailable:
        held = None
        redis_answered = False
    else:
        redis_answered = True
    if held is not None and held.version == record.version:
        return True
    try:
        stored = await db.get_form(record.key)
    except DatabaseUnavailable:
        stored = None
    if stored is not None and stored.version == record.version:
        return True
    return False if redis_answered else None
