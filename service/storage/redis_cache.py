"""Redis adapter: forms as version-guarded hashes (split into parts when big), exam info."""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, nullcontext
from importlib import resources
from typing import Any, TypeVar, cast

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode
from redis.exceptions import RedisClusterException, RedisError

from schemas.records import FormKey, FormRecord
from service.core import codec
from service.core.errors import (
    FormSubmitted,
    StaleVersion,
    StoreUnavailable,
    TooManyRequests,
    VersionAhead,
)
from service.core.ids import shard_of
from service.core.names import Names
from service.core.ports import Missing, Replay, Reserved
from service.core.settings import Settings
from service.storage.redis_pipe import RedisPipe

T = TypeVar("T")
log = logging.getLogger(__name__)
_PENDING_TTL_S = 60
# RedisClusterException (no node reachable, slot not served) is no RedisError.
_DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    RedisError,
    RedisClusterException,
    OSError,
    TimeoutError,
)
# While the cluster changes shape (a master died, a replica takes over) the asyncio cluster
# client can fail inside itself, e.g. writing on a connection another task just closed
# (redis-py#3546, #3835): a dependency failure for us, not a bug of the request.
_CLUSTER_ERRORS = (*_DRIVER_ERRORS, AttributeError, TypeError)


def _seconds(ms: bytes | int) -> int:
    """A Retry-After in whole seconds, at least one."""
    return max(1, math.ceil(int(ms) / 1000))


def _lua(name: str) -> str:
    return resources.files("service.storage").joinpath(f"lua/{name}.lua").read_text()


class RedisCache:
    def __init__(
        self,
        client: redis.Redis | redis.RedisCluster,
        names: Names,
        settings: Settings,
        pipe: RedisPipe | None = None,
    ) -> None:
        self._r = client
        self._pipe = pipe
        self._names = names
        self._settings = settings
        cluster = isinstance(client, redis.RedisCluster)
        self._errors: tuple[type[BaseException], ...] = (
            _CLUSTER_ERRORS if cluster else _DRIVER_ERRORS
        )
        # The cluster client fails a command at once (MaxConnectionsError) when a node's pool
        # is exhausted, where the blocking pool waits: bound the commands in flight instead.
        self._in_flight: AbstractAsyncContextManager[Any] = (
            asyncio.Semaphore(settings.redis_pool_size) if cluster else nullcontext()
        )

        def register(text: str) -> Any:
            script = client.register_script(text)
            # The save path's scripts ride one multiplexed connection when there is one.
            return script if pipe is None else pipe.register_script(text, script)

        self._stage = register(_lua("stage"))
        self._commit = register(_lua("commit"))
        self._read = register(_lua("read"))
        self._login = client.register_script(_lua("login"))
        self._login_refund = client.register_script(_lua("login_refund"))
        self._login_global = client.register_script(_lua("login_global"))

    async def _call(self, aw: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout(self._settings.redis_timeout_s), self._in_flight:
                return await aw
        except self._errors as exc:
            raise StoreUnavailable from exc
        finally:
            if inspect.iscoroutine(aw):
                aw.close()  # not started when the wait for a slot timed out

    async def _piped(self, aw: Awaitable[T]) -> T:
        """A call on the multiplexed connection, which times its replies out itself."""
        try:
            return await aw
        except self._errors as exc:
            raise StoreUnavailable from exc

    def _caller(self) -> Callable[[Awaitable[T]], Awaitable[T]]:
        return self._piped if self._pipe is not None else self._call

    async def stage(
        self,
        key: FormKey,
        idem: str | None,
        fingerprint: str,
        floor: int | None = None,
        *,
        locked: bool = False,
        expect: int | None = None,
    ) -> Reserved | Replay | Missing:
        """``locked``: refuse (FormSubmitted) when the form is submitted; ``expect``: refuse
        (StaleVersion) unless that version is the committed one."""
        names, s = self._names, self._settings
        keys = [
            names.form_key(key),
            self._idem_key(key, idem),
            names.save_counter_key(key.candidate_id),
            names.live_idempotency_key(key.candidate_id),
        ]
        floor_arg = "" if floor is None else str(floor)
        args = [
            "1" if idem else "0",
            fingerprint,
            _PENDING_TTL_S,
            floor_arg,
            s.version_max_ahead_s * 1_000_000,
            s.save_rate_limit,
            s.save_rate_window_s,
            s.idempotency_keys_max,
            s.idempotency_ttl_s,
            "1" if locked else "0",
            "" if expect is None else str(expect),
        ]
        reply = await self._caller()(self._stage(keys=keys, args=args))
        if reply[0] == b"idem":
            return Replay(reply[1].decode())
        if reply[0] == b"miss":
            return Missing()
        if reply[0] == b"locked":
            raise FormSubmitted
        if reply[0] == b"stale":
            raise StaleVersion(f"the form is at version {int(reply[1])} now; review it again")
        if reply[0] == b"ahead":
            log.error("refusing to save %s: next version %s is ahead of the clock", key, reply[1])
            raise VersionAhead
        if reply[0] == b"slow":
            wait_s = _seconds(reply[1])
            raise TooManyRequests(
                f"too many saves for this candidate; try again in {wait_s} s",
                retry_after_s=wait_s,
            )
        if reply[0] == b"keys":
            wait_s = _seconds(reply[1])
            raise TooManyRequests(
                f"{s.idempotency_keys_max} Idempotency-Keys of this candidate are still live; "
                "reuse one or save without a new key",
                retry_after_s=wait_s,
            )
        return Reserved(version=int(reply[1]), now_us=int(reply[2]))

    async def commit(self, record: FormRecord, idem: str | None, idem_result: str) -> bool:
        return await self._apply(record, idem, idem_result if idem else "")

    async def fill(self, record: FormRecord) -> bool:
        return await self._apply(record, None, "")

    async def _apply(self, record: FormRecord, idem: str | None, idem_result: str) -> bool:
        keys, args = self._commit_args([record], idem, idem_result)
        reply = await self._caller()(self._commit(keys=keys, args=args))
        return bool(reply[0])

    def _commit_args(
        self, records: Sequence[FormRecord], idem: str | None, idem_result: str
    ) -> tuple[list[str], list[Any]]:
        """KEYS and ARGV of commit.lua for records of one shard (bulk fills send many)."""
        first = records[0]
        shard = shard_of(first.candidate_id, self._settings.shards)
        keys = [self._idem_key(first.key, idem), self._names.changes_key(shard)]
        args: list[Any] = [idem_result, self._settings.idempotency_ttl_s]
        for record in records:
            parts = codec.split(record.payload, self._settings.chunk_bytes)
            keys.append(self._names.form_key(record.key))
            args += [record.version, record.updated_us, record.status, len(parts), *parts]
        return keys, args

    async def _get(self, key: str) -> bytes | None:
        """GET on the multiplexed connection when there is one (the pool otherwise)."""
        if self._pipe is not None:
            return cast(bytes | None, await self._piped(self._pipe.execute("GET", key)))
        return cast(bytes | None, await self._call(self._r.get(key)))

    async def release_idempotency(self, key: FormKey, idem: str) -> None:
        idem_key = self._names.idempotency_key(key, idem)
        live = self._names.live_idempotency_key(key.candidate_id)
        async with self._r.pipeline(transaction=False) as pipe:
            pipe.delete(idem_key)
            pipe.zrem(live, idem_key)
            await self._call(pipe.execute())

    async def idempotency_record(self, key: FormKey, idem: str) -> str | None:
        # The client returns bytes: it is created without decode_responses.
        raw = cast(
            bytes | None, await self._call(self._r.get(self._names.idempotency_key(key, idem)))
        )
        return None if raw is None else raw.decode()

    async def read(self, key: FormKey) -> FormRecord | None:
        reply = await self._caller()(self._read(keys=[self._names.form_key(key)]))
        if not reply:
            return None
        return FormRecord(
            candidate_id=key.candidate_id,
            batch=key.batch,
            version=int(reply[0]),
            updated_us=int(reply[1]),
            status=reply[2].decode(),
            payload=codec.join(reply[3:]),
        )

    async def get_exam(self, candidate_id: str) -> dict[str, Any] | None:
        # The client returns bytes: it is created without decode_responses.
        blob = await self._get(self._names.exam_key(candidate_id))
        return None if blob is None else dict(codec.unpack(blob))

    async def put_exam(self, candidate_id: str, exam: dict[str, Any]) -> None:
        await self._call(self._r.set(self._names.exam_key(candidate_id), codec.pack(exam)))

    async def put_exams(self, exams: dict[str, dict[str, Any]]) -> None:
        """Pipelined bulk load (imports, demo data). Not a transaction: on a cluster the
        client splits the pipeline by node, as the candidates' keys lie in many slots."""
        # One MSET per hash tag (one slot each) costs a fraction of one SET per key in
        # redis-py; pack_small skips compressing the many small values.
        by_tag: dict[str, dict[str, bytes]] = {}
        for candidate_id, exam in exams.items():
            group = by_tag.setdefault(self._names.tag(candidate_id), {})
            group[self._names.exam_key(candidate_id)] = codec.pack_small(exam)
        async with self._r.pipeline(transaction=False) as pipe:
            for group in by_tag.values():
                # A cluster pipeline refuses .mset(); the raw command (one slot) it routes.
                pipe.execute_command("MSET", *(v for item in group.items() for v in item))
            await self._call(pipe.execute())

    # --- Catalogue copies (the middle level of the catalogue cache).
    async def get_catalogue(self, key: str) -> bytes | None:
        return await self._get(self._names.catalogue_key(key))

    async def put_catalogue(self, key: str, blob: bytes, ttl_s: int) -> None:
        await self._call(self._r.set(self._names.catalogue_key(key), blob, ex=ttl_s))

    async def get_token_generation(self, staff: bool, subject: str) -> int | None:
        key = self._names.token_generation_key(staff, subject)
        value = await self._call(self._r.get(key))
        return None if value is None else int(value)

    async def put_token_generation(
        self, staff: bool, subject: str, generation: int, ttl_s: int
    ) -> None:
        key = self._names.token_generation_key(staff, subject)
        await self._call(self._r.set(key, generation, ex=ttl_s))

    async def reserve_login(
        self, client: str, account: str, per_account: int, per_client: int, window_s: int
    ) -> int:
        keys = self._names.login_keys(client, account)
        reply = await self._call(self._login(keys=keys, args=[per_account, per_client, window_s]))
        return 0 if int(reply[0]) else _seconds(reply[1])

    async def refund_login(self, client: str, account: str) -> None:
        await self._call(self._login_refund(keys=self._names.login_keys(client, account)))

    async def reserve_global_login(self, limit: int, window_s: int) -> int:
        keys = [self._names.login_global_key()]
        reply = await self._call(self._login_global(keys=keys, args=[limit, window_s]))
        return 0 if int(reply[0]) else _seconds(reply[1])

    async def ping(self) -> None:
        await self._call(self._r.ping())

    @property
    def client(self) -> redis.Redis | redis.RedisCluster:
        """The client, for sibling adapters sharing its connections (reconciler, warm-up)."""
        return self._r

    def _idem_key(self, key: FormKey, idem: str | None) -> str:
        # Scripts always get two keys; without an Idempotency-Key the second is never touched.
        return self._names.idempotency_key(key, idem or "-")


@asynccontextmanager
async def open_cache(settings: Settings, names: Names) -> AsyncIterator[RedisCache]:
    """A cache on a blocking pool (waits for a free connection instead of failing at once),
    or on a Redis Cluster when ``redis_cluster_nodes`` is set.

    It does not ping: the service starts while Redis is down and reports it in /health/ready.
    """
    if settings.redis_cluster_nodes:
        async with _open_cluster(settings, names) as cache:
            yield cache
        return
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.redis_pool_size,
        timeout=settings.redis_timeout_s,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )
    client = redis.Redis(connection_pool=pool)
    pipe = None
    if settings.redis_multiplex and RedisPipe.supports(settings.redis_url):
        pipe = RedisPipe(settings.redis_url, settings.redis_timeout_s)
    try:
        cache = RedisCache(client, names, settings, pipe)
        yield cache
    finally:
        if pipe is not None:
            await pipe.aclose()
        await client.aclose()
        await pool.aclose()  # a pool passed in explicitly is not closed by the client


def cluster_seeds(nodes: str) -> list[ClusterNode]:
    """``host:port,host:port`` → seed nodes; the client discovers the rest of the cluster."""
    seeds = []
    for item in nodes.split(","):
        host, sep, port = item.strip().rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"VOLREG_REDIS_CLUSTER_NODES: expected host:port, got {item!r}")
        seeds.append(ClusterNode(host, int(port)))
    return seeds


@asynccontextmanager
async def _open_cluster(settings: Settings, names: Names) -> AsyncIterator[RedisCache]:
    """Every key of a candidate carries its shard's hash tag, so each script and each form
    touches one slot. The client learns the slot map on first use and again after a
    failover (a connection error or MOVED reply makes it re-read the map)."""
    client = redis.RedisCluster(
        startup_nodes=cluster_seeds(settings.redis_cluster_nodes),
        # None: no AUTH (a cluster without a password); the same credentials on every node.
        username=settings.redis_cluster_username or None,
        password=settings.redis_cluster_password or None,
        max_connections=settings.redis_pool_size,
        socket_timeout=settings.redis_timeout_s,
        socket_connect_timeout=settings.redis_timeout_s,
    )  # connects lazily: the service starts while the cluster is down, like on one Redis
    try:
        yield RedisCache(client, names, settings)
    finally:
        await client.aclose()
