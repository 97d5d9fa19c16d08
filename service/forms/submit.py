"""Submitting a form: the version the candidate reviewed becomes ``submitted`` through the
same protocol as a save (a new version staged in Redis, the broker's confirm, the Redis
commit, the consumer), so everything downstream — MySQL, history, progress, the
reconciler — treats it like any save."""

from __future__ import annotations

from datetime import datetime

from schemas.records import STATUS_SUBMITTED, FormKey, FormRecord, Origin
from service.core.errors import NotFound, StaleVersion
from service.core.ports import FormCache, Missing, Replay
from service.forms.save import Forms, Saved
from service.forms.windows import BatchWindows


class Submissions:
    def __init__(self, forms: Forms, cache: FormCache, batches: BatchWindows) -> None:
        self._forms = forms
        self._cache = cache
        self._batches = batches

    async def submit(
        self, key: FormKey, version: int, now: datetime, origin: Origin | None = None
    ) -> tuple[Saved, bool]:
        """Submit ``version``; (the submitted version, whether this call submitted it).

        409 when the window is not open or the form is at another version than the one
        reviewed (checked again atomically when the new version is reserved); submitting the
        submitted version again changes nothing."""
        batch = await self._batches.require_open(key.batch, now)
        try:
            current = await self._forms.read(key)  # refills Redis from MySQL on a miss
        except NotFound:
            raise StaleVersion("nothing was saved in this batch yet") from None
        if current.version != version:
            raise StaleVersion(
                f"the form is at version {current.version}, not {version}; review it again"
            )
        if current.status == STATUS_SUBMITTED:
            return Saved(current.version, current.updated_us), False
        staged = await self._cache.stage(
            key, None, "", locked=not batch.changes_after_submit, expect=version
        )
        if isinstance(staged, Missing):  # Redis lost the form since it was read: read again
            raise StaleVersion("the form is being reloaded; review it again")
        assert not isinstance(staged, Replay)  # no Idempotency-Key was sent
        record = FormRecord(
            key.candidate_id,
            key.batch,
            staged.version,
            staged.now_us,
            STATUS_SUBMITTED,
            current.payload,
            origin,
        )
        await self._forms.deliver(record, None, "")
        return Saved(record.version, record.updated_us), True
