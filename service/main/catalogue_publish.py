"""Publishing catalogue changes made outside the API (``volreg batch``): refresh the Redis
copies and broadcast the invalidation, as an admin's PUT does."""

from __future__ import annotations

import logging

from service.catalogue.broadcast import open_broadcast
from service.catalogue.catalogue import Catalogue
from service.catalogue.mysql import CatalogueTables
from service.core.local_cache import LocalCache
from service.core.names import Names
from service.core.settings import Settings
from service.storage.rabbit import open_broker
from service.storage.redis_cache import open_cache

log = logging.getLogger(__name__)
_BROKER_WAIT_S = 5.0


async def publish_keys(settings: Settings, names: Names, db: object, keys: list[str]) -> None:
    async with (
        open_cache(settings, names) as cache,
        open_broker(settings, names) as broker,
        open_broadcast(broker, names, settings.broker_timeout_s) as broadcast,
    ):
        try:
            await broadcast.wait_attached(_BROKER_WAIT_S)
        except TimeoutError:
            log.warning("broker not reachable: API processes see the change within their TTL")
        local: LocalCache[object] = LocalCache(1, 0.0)
        catalogue = Catalogue(
            CatalogueTables(db), cache, local, settings.catalogue_redis_ttl_s, broadcast
        )
        outcome = await catalogue.published(keys)
        if not all(outcome.values()):
            log.warning("catalogue change published partly: %s", outcome)
