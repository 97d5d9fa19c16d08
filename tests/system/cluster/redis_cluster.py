"""A throw-away Redis Cluster (3 masters + 3 replicas) of redis-server processes on spare
loopback ports, data under a temp dir, every process stopped by its PID at the end. Like a
deployment's, every node requires a password (``requirepass``; replicas authenticate to
their masters with ``masterauth``)."""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

# Short enough that a replica takes over within a few seconds of its master dying.
NODE_TIMEOUT_MS = 1000
_START_S = 20.0


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def spare_ports(count: int) -> list[int]:
    """``count`` ports whose cluster-bus twins (port + 10000) are free as well."""
    ports: list[int] = []
    while len(ports) < count:
        port = random.randrange(20000, 29000)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


# Every cluster of this run requires it; redis-cli reads it from REDISCLI_AUTH.
PASSWORD = secrets.token_hex(16)


def _pong(port: int) -> bool:
    return cli(port, "PING").strip() == "PONG"


def cli(port: int, *args: str, timeout: float = 10.0, password: str | None = PASSWORD) -> str:
    """redis-cli on one node, with the cluster's password (``password=None``: without)."""
    env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
    if password is not None:
        env["REDISCLI_AUTH"] = password
    out = subprocess.run(
        ["redis-cli", "--no-auth-warning", "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=True,
        env=env,
    )
    return out.stdout


@dataclass
class RedisCluster:
    root: Path
    ports: list[int]
    procs: dict[int, subprocess.Popen[bytes]] = field(default_factory=dict)
    # Slot ranges each killed master served, to find who serves them afterwards.
    orphaned: dict[int, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def nodes(self) -> str:
        """The seed list as ``VOLREG_REDIS_CLUSTER_NODES`` takes it."""
        return ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        for port in self.ports:
            data = self.root / str(port)
            data.mkdir()
            self.procs[port] = subprocess.Popen(
                [
                    "redis-server",
                    "--bind", "127.0.0.1",
                    "--port", str(port),
                    "--cluster-enabled", "yes",
                    "--cluster-config-file", "nodes.conf",
                    "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                    # A replica may take over however long it was cut off from its master.
                    "--cluster-replica-validity-factor", "0",
                    "--requirepass", PASSWORD,
                    "--masterauth", PASSWORD,
                    "--save", "",
                    "--appendonly", "no",
                    "--dir", str(data),
                    "--logfile", str(data / "redis.log"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )  # fmt: skip
        for port in self.ports:
            self._wait(partial(_pong, port), f"node {port} did not start")
        subprocess.run(
            [
                "redis-cli", "--no-auth-warning", "--cluster", "create",
                *(f"127.0.0.1:{p}" for p in self.ports),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True,
            timeout=60,
            check=True,
            env={**os.environ, "REDISCLI_AUTH": PASSWORD},
        )  # fmt: skip
        self._wait(self._settled, "the cluster did not settle")

    def _settled(self) -> bool:
        """Every node sees a healthy cluster and every replica is in sync with its master."""
        for port in self.alive:
            if "cluster_state:ok" not in cli(port, "CLUSTER", "INFO"):
                return False
            info = cli(port, "INFO", "replication")
            if "role:slave" in info and "master_link_status:up" not in info:
                return False
        return len(self.masters()) == 3

    @property
    def alive(self) -> list[int]:
        return [p for p, proc in self.procs.items() if proc.poll() is None]

    def masters(self) -> dict[int, list[tuple[int, int]]]:
        """Port → slot ranges of every master that serves slots, as a live node sees it."""
        out: dict[int, list[tuple[int, int]]] = {}
        for line in cli(self.alive[0], "CLUSTER", "NODES").splitlines():
            parts = line.split()
            if "master" not in parts[2] or "fail" in parts[2] or len(parts) < 9:
                continue
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            for span in parts[8:]:
                if span.startswith("["):
                    continue  # a slot being migrated
                low, _, high = span.partition("-")
                out.setdefault(port, []).append((int(low), int(high or low)))
        return out

    def master_of(self, slot: int) -> int:
        for port, spans in self.masters().items():
            if any(low <= slot <= high for low, high in spans):
                return port
        raise LookupError(f"no master serves slot {slot}")

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash would."""
        self.orphaned[port] = self.masters().get(port, [])
        proc = self.procs[port]
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

    def wait_failover(self, dead: int, timeout: float = 30.0) -> int:
        """Wait until a replica took over the slots of ``dead``; returns the new master."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.SubprocessError, IndexError):
                masters = self.masters()
                if dead not in masters and len(masters) == 3 and self._state_ok():
                    return self.master_of(self.orphaned[dead][0][0])
            time.sleep(0.2)
        raise AssertionError(f"no replica took over from {dead} within {timeout}s")

    def _state_ok(self) -> bool:
        return all("cluster_state:ok" in cli(p, "CLUSTER", "INFO") for p in self.alive)

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)

    @staticmethod
    def _wait(ready: Callable[[], bool], message: str) -> None:
        deadline = time.monotonic() + _START_S
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                if ready():
                    return
            time.sleep(0.1)
        raise RuntimeError(message)


@contextlib.contextmanager
def redis_cluster() -> Iterator[RedisCluster]:
    """Start a 6-node cluster; stop it and remove its data however the block ends."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        raise RuntimeError(
            "redis-server and redis-cli are needed (Debian: redis-server, redis-tools)"
        )
    root = Path(tempfile.mkdtemp(prefix="volreg-redis-cluster-"))
    cluster = RedisCluster(root, spare_ports(6))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
