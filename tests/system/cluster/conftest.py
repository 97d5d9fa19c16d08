"""The Redis Cluster and sharded-MySQL suites run only under `make test-cluster`, which loads
``tests.system.cluster.topology`` (it starts the cluster and switches every suite's settings)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.system.cluster.topology import ACTIVE

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.environ.get(ACTIVE) == "1":
        return
    skip = pytest.mark.skip(reason="needs the Redis Cluster and MySQL shards: make test-cluster")
    for item in items:
        if _HERE in Path(item.path).parents:
            item.add_marker(skip)
