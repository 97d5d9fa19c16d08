"""The Redis Cluster requires a password on every node, and the service's cluster client
authenticates like the single-node one: without the password (or with a wrong one) the
cluster refuses it; with the password, or an ACL user and its password, it works."""

from __future__ import annotations

import dataclasses
import secrets

import pytest
import redis.asyncio as redis
from redis.exceptions import AuthenticationError, RedisClusterException, ResponseError

from service.core.errors import StoreUnavailable
from service.core.names import names_of
from service.core.settings import Settings
from service.storage.redis_cache import cluster_seeds, open_cache
from tests.system.cluster.redis_cluster import RedisCluster, cli


async def _ping(settings: Settings) -> None:
    async with open_cache(settings, names_of(settings)) as cache:
        await cache.ping()


async def test_a_client_without_the_password_is_refused(
    cluster: RedisCluster, settings: Settings
) -> None:
    assert settings.redis_cluster_password, "the suite runs the cluster with a password"
    await _ping(settings)
    for password in ("", "not-" + settings.redis_cluster_password):
        with pytest.raises(StoreUnavailable):
            await _ping(dataclasses.replace(settings, redis_cluster_password=password))
    # The driver's own answer, below the service's error: every node asks for the password.
    anonymous = redis.RedisCluster(startup_nodes=cluster_seeds(cluster.nodes))
    with pytest.raises((AuthenticationError, RedisClusterException, ResponseError)) as refused:
        await anonymous.ping()
    await anonymous.aclose()
    assert "auth" in str(refused.value).lower(), refused.value
    for port in cluster.alive:
        assert "NOAUTH" in cli(port, "PING", password=None), port


async def test_an_acl_user_with_its_password_gets_in(
    cluster: RedisCluster, settings: Settings
) -> None:
    user, password = f"volreg-{secrets.token_hex(4)}", secrets.token_hex(16)
    for port in cluster.alive:  # ACL users are per node
        cli(port, "ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    try:
        acl = dataclasses.replace(
            settings, redis_cluster_username=user, redis_cluster_password=password
        )
        async with open_cache(acl, names_of(acl)) as cache:
            await cache.ping()
            await cache.client.set(f"{{{acl.key_prefix}:acl}}:probe", b"1", ex=60)
            assert await cache.client.get(f"{{{acl.key_prefix}:acl}}:probe") == b"1"
        with pytest.raises(StoreUnavailable):
            await _ping(dataclasses.replace(acl, redis_cluster_password="wrong"))
    finally:
        for port in cluster.alive:
            cli(port, "ACL", "DELUSER", user)
