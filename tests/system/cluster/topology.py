"""pytest plugin for `make test-cluster` (``-p tests.system.cluster.topology``): starts a Redis
Cluster for the whole run and points every suite's settings at it and at MySQL split over two
databases (``tests.support.make_settings`` reads the variables set here)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import pytest

from tests.system.cluster.redis_cluster import PASSWORD, RedisCluster, redis_cluster

ACTIVE = "VOLREG_TEST_CLUSTER"

# Tests of the single-server suites that cannot mean anything on this topology.
_NOT_HERE = {
    "test_redis_down_gives_503_for_saves_and_reads_fall_back_to_mysql": (
        "cuts a proxy in front of one Redis; on a cluster the client follows the nodes the "
        "cluster announces (tests/system/cluster/test_redis_failover.py kills a master instead)"
    ),
    "test_redelivered_and_reordered_messages_change_nothing": (
        "reads synced_at through MySQLDatabase internals; the sharded suite checks that older "
        "versions leave rows alone on each shard (tests/system/cluster/test_sharded_mysql.py)"
    ),
}


# Modules that reach into a single MySQLDatabase (its cursor): they run on the Redis Cluster
# with one database; tests/system/cluster/test_reconcile_sharded.py runs the reconciler on shards.
_ONE_DATABASE = {"test_reconciler.py"}


class _Topology:
    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self.cluster: RedisCluster | None = None

    def start(self) -> None:
        self.cluster = self._stack.enter_context(redis_cluster())
        os.environ["VOLREG_TEST_REDIS_CLUSTER_NODES"] = self.cluster.nodes
        os.environ["VOLREG_TEST_REDIS_CLUSTER_PASSWORD"] = PASSWORD
        os.environ["VOLREG_TEST_MYSQL_SHARDED"] = "1"
        os.environ[ACTIVE] = "1"

    def stop(self) -> None:
        self._stack.close()


_topology = _Topology()


def pytest_configure(config: pytest.Config) -> None:
    _topology.start()


def pytest_unconfigure(config: pytest.Config) -> None:
    _topology.stop()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = _NOT_HERE.get(getattr(item, "originalname", item.name))
        if reason:
            item.add_marker(pytest.mark.skip(reason=f"cluster topology: {reason}"))


@pytest.fixture(scope="session")
def cluster() -> RedisCluster:
    """The running cluster, for tests that kill one of its nodes."""
    assert _topology.cluster is not None
    return _topology.cluster


@pytest.fixture(scope="module", autouse=True)
def _one_database_for(request: pytest.FixtureRequest) -> Iterator[None]:
    """Before the module's own fixtures: ``make_settings`` reads this variable."""
    if request.path.name not in _ONE_DATABASE:
        yield
        return
    os.environ["VOLREG_TEST_MYSQL_SHARDED"] = "0"
    try:
        yield
    finally:
        os.environ["VOLREG_TEST_MYSQL_SHARDED"] = "1"
