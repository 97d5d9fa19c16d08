"""Publishing catalogue changes made outside the API (``volreg batch``): refresh the Redis
copies and broadcast the invalidation, as an admin's PUT does."""

from __future__ import annotations

import logging

from service.adapters.mysql_catalogue import CatalogueTables
from service.adapters.rabbit import open_broker
from service.adapters.rabbit_broadcast import open_broadcast
from service.adapters.redis_cache import open_cache
from service.cache.local import LocalCache
from service.names import Names
from service.settings import Settings
from service.usecases.catalogue import Catalogue

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
