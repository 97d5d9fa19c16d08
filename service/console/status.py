"""The pipeline at a glance: messages waiting in the form queues (the consumers' lag), dead
letters, hot-item events waiting, and the last reconcile run."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from service.core.errors import Unavailable

log = logging.getLogger(__name__)
QueueCounts = Callable[[], Awaitable[dict[str, int]]]
LastReconcile = Callable[[], Awaitable[dict[str, Any] | None]]


class Pipeline:
    def __init__(
        self,
        form_queues: list[str],
        dead_letter_queue: str,
        hot_queue: str,
        counts: QueueCounts,
        last_reconcile: LastReconcile,
    ) -> None:
        self._form_queues = form_queues
        self._dead = dead_letter_queue
        self._hot = hot_queue
        self._counts = counts
        self._last_reconcile = last_reconcile

    async def status(self) -> dict[str, Any]:
        """Each part answers on its own: a broker or MySQL that is down leaves its part null
        with the reason, the rest is still shown."""
        body: dict[str, Any] = {"errors": {}}
        try:
            counts = await self._counts()
            queues = {name: counts.get(name, 0) for name in self._form_queues}
            body.update(
                queues=queues,
                waiting=sum(queues.values()),
                dead_letters=counts.get(self._dead, 0),
                hot_events_waiting=counts.get(self._hot, 0),
            )
        except Unavailable as exc:
            body.update(queues=None, waiting=None, dead_letters=None, hot_events_waiting=None)
            body["errors"]["broker"] = exc.message
        try:
            body["last_reconcile"] = await self._last_reconcile()
        except Unavailable as exc:
            body["last_reconcile"] = None
            body["errors"]["mysql"] = exc.message
        return body
