"""A throw-away 3-node RabbitMQ cluster on spare loopback ports: node names, data directories,
Erlang cookie and credentials of its own, and an epmd of its own on a spare port (the machine's
nodes keep theirs), every process started and stopped by us by its PID."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from loadtest.cluster_local import RabbitServer, Server, which
from service.core.settings import Settings

_CLI = Path("/usr/lib/rabbitmq/bin")  # the plain scripts: the wrappers switch users
_CLI_TIMEOUT_S = 60.0


class Epmd(Server):
    """The cluster's name server: nodes and the CLI tools find each other through it."""

    name = "epmd"
    boot_timeout_s = 10.0

    def command(self) -> Sequence[str]:
        return [which("epmd"), "-port", str(self.port)]

    def environment(self) -> dict[str, str]:
        return {**os.environ, "ERL_EPMD_ADDRESS": "127.0.0.1"}


class RabbitCluster:
    def __init__(self, root: Path, size: int = 3) -> None:
        self.epmd = Epmd(root)
        cookie, password = secrets.token_hex(16), secrets.token_hex(12)
        first = RabbitServer(
            root, name="node-1", cookie=cookie, password=password, epmd_port=self.epmd.port
        )
        self.nodes = [first] + [
            RabbitServer(
                root,
                name=f"node-{i}",
                cookie=cookie,
                password=password,
                epmd_port=self.epmd.port,
                join=first.node,
            )
            for i in range(2, size + 1)
        ]
        self.started_in_s = 0.0

    def urls(self, *first: RabbitServer) -> str:
        """``VOLREG_AMQP_URL`` for the cluster, the nodes ``first`` leading the list."""
        order = [*first, *(n for n in self.nodes if n not in first)]
        return ",".join(n.url for n in order)

    def settings_for(self, settings: Settings, *first: RabbitServer) -> Settings:
        """``settings`` on this cluster (``first`` leading the node list), every quorum queue
        on all its nodes, with queues of their own."""
        return dataclasses.replace(
            settings,
            amqp_url=self.urls(*first),
            quorum_initial_group_size=len(self.nodes),
            queue_prefix=f"{settings.queue_prefix}-{uuid.uuid4().hex[:6]}",
        )

    async def start(self) -> None:
        """The first node alone, then the others, which join it (classic peer discovery);
        returns once every node runs in one cluster."""
        started = time.monotonic()
        await self.epmd.start()
        first, *others = self.nodes
        await first.prepare()
        await first.start()
        for node in others:
            await node.prepare()
        await asyncio.gather(*(n.start() for n in others))
        await self.wait_running([n.node for n in self.nodes])
        self.started_in_s = time.monotonic() - started

    async def stop(self) -> None:
        await asyncio.gather(*(n.stop() for n in self.nodes), return_exceptions=True)
        await self.epmd.stop()

    async def cli(self, tool: str, *args: str, node: RabbitServer | None = None) -> str:
        """``tool`` (rabbitmqctl, rabbitmq-queues, ...) against ``node`` (a running one)."""
        target = node or next(n for n in self.nodes if n.alive())
        script = _CLI / tool
        proc = await asyncio.create_subprocess_exec(
            str(script) if script.exists() else which(tool),
            "-n",
            target.node,
            "-q",
            *args,
            env=target.environment(),  # its cookie and our epmd
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with asyncio.timeout(_CLI_TIMEOUT_S):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        if proc.returncode != 0:
            raise RuntimeError(f"{tool} {' '.join(args)}: {err.decode()[-500:]}")
        return out.decode()

    async def running(self) -> set[str]:
        """The nodes the cluster counts as running, as a live node sees it."""
        status = json.loads(await self.cli("rabbitmqctl", "cluster_status", "--formatter", "json"))
        return set(status["running_nodes"])

    async def wait_running(self, nodes: Sequence[str], timeout_s: float = 120.0) -> float:
        """Wait until every one of ``nodes`` runs as a member; returns the seconds waited."""
        started = time.monotonic()
        while True:
            try:
                if set(nodes) <= await self.running():
                    return time.monotonic() - started
            except (RuntimeError, ValueError, KeyError, StopIteration):
                pass  # no node answers yet, or one still boots
            if time.monotonic() - started > timeout_s:
                raise AssertionError(f"{nodes} not all running after {timeout_s:.0f} s")
            await asyncio.sleep(0.5)

    async def queues(self) -> dict[str, dict[str, object]]:
        """Queue name → its type, leader, members and online members."""
        listing = await self.cli(
            "rabbitmqctl",
            "list_queues",
            "-p",
            self.nodes[0].vhost,
            "name",
            "type",
            "leader",
            "members",
            "online",
            "--formatter",
            "json",
        )
        return {q["name"]: q for q in json.loads(listing)}

    async def raft_status(self, queue: str) -> dict[str, dict[str, object]]:
        """Node → its Raft state, log and commit index for one quorum queue."""
        vhost = self.nodes[0].vhost
        out = await self.cli(
            "rabbitmq-queues", "quorum_status", queue, "-p", vhost, "--formatter", "json"
        )
        return {row["Node Name"]: row for row in json.loads(out)}


@asynccontextmanager
async def rabbit_cluster() -> AsyncIterator[RabbitCluster]:
    """Start a 3-node cluster; stop it and remove its data however the block ends."""
    root = Path(tempfile.mkdtemp(prefix="volreg-rabbit-cluster-"))
    cluster = RabbitCluster(root)
    try:
        await cluster.start()
        yield cluster
    finally:
        await cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
