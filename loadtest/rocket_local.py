"""A private RocketMQ 5 for the chaos harness: the project's own name server and proxy (local
mode, the broker inside the proxy's JVM, ``SYNC_FLUSH``), started by ``scripts/rocketmq.sh``
with a directory of its own under the run's (``ROCKETMQ_HOME``, store, logs, pid files) and
spare loopback ports, so it never meets the checkout's RocketMQ on the standard ports. Each
of the two JVMs can be killed (SIGKILL) and started again alone."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from pathlib import Path

from loadtest.children import port_open
from loadtest.cluster_local import free_port, port_free

_SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "rocketmq.sh"
_UP_TIMEOUT_S = 300.0  # two JVM starts, topic creation and a probe on a busy 2-core machine
_GONE_S = 10.0


def broker_port() -> int:
    """A free port P whose neighbours P-2 (the broker's fast channel) and P+1 (its HA port)
    are free too."""
    for _ in range(50):
        port = free_port()
        if port > 1026 and port_free(port - 2) and port_free(port + 1):
            return port
    raise RuntimeError("no free block of ports for the RocketMQ broker")


class RocketMQ:
    """Name server + proxy, through the project's script; :attr:`namesrv` and :attr:`proxy`
    are the two processes the harness kills."""

    def __init__(self, root: Path, queue_prefix: str, queues: int, broker_heap: str) -> None:
        self.root = root / "rocketmq"
        self.root.mkdir(parents=True, exist_ok=True)
        self.namesrv_port = free_port()
        self.broker_port = broker_port()
        self.grpc_port = free_port()
        self.remoting_port = free_port()
        self._queue_prefix = queue_prefix
        self._queues = queues
        self._broker_heap = broker_heap
        self.namesrv = RocketNode(self, "namesrv", self.namesrv_port)
        self.proxy = RocketNode(self, "proxy", self.grpc_port)
        self._lock = asyncio.Lock()

    @property
    def endpoints(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def broker_addr(self) -> str:
        return f"127.0.0.1:{self.broker_port}"

    def _environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("VOLREG_", "ROCKETMQ_"))}
        env.update(
            ROCKETMQ_DIR=str(self.root),
            ROCKETMQ_NAMESRV_PORT=str(self.namesrv_port),
            ROCKETMQ_BROKER_PORT=str(self.broker_port),
            ROCKETMQ_GRPC_PORT=str(self.grpc_port),
            ROCKETMQ_REMOTING_PORT=str(self.remoting_port),
            ROCKETMQ_BROKER_HEAP=self._broker_heap,
            VOLREG_ENV_FILE=os.devnull,  # not the checkout's settings
            VOLREG_QUEUE_PREFIX=self._queue_prefix,
            VOLREG_QUEUES=str(self._queues),
        )
        return env

    async def _script(self, command: str) -> float:
        """``scripts/rocketmq.sh COMMAND`` for this instance; the seconds it took."""
        started = time.monotonic()
        log = self.root / "script.log"
        async with self._lock:
            with log.open("ab") as out:
                proc = await asyncio.create_subprocess_exec(
                    "bash",
                    str(_SCRIPT),
                    command,
                    env=self._environment(),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=out,
                    stderr=out,
                )
            try:
                async with asyncio.timeout(_UP_TIMEOUT_S):
                    code = await proc.wait()
            except TimeoutError:
                proc.kill()
                await proc.wait()
                code = -1
        if code != 0:
            tail = log.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"rocketmq.sh {command} failed ({code}): " + " | ".join(tail))
        return time.monotonic() - started

    async def start(self) -> float:
        """Start what is not running (both the first time); returns once a probe message sent
        through the proxy got its SendReceipt."""
        return await self._script("up")

    async def stop(self) -> None:
        await self._script("down")


class RocketNode:
    """One of the two JVMs, with the interface of the harness's other servers."""

    def __init__(self, rocket: RocketMQ, node: str, port: int) -> None:
        self._rocket = rocket
        self._node = node
        self.port = port
        self.name = f"rocketmq-{node}"

    @property
    def _pid_file(self) -> Path:
        return self._rocket.root / "run" / f"rocketmq-{self._node}.pid"

    @property
    def pid(self) -> int | None:
        try:
            return int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def alive(self) -> bool:
        """Our JVM (its command line names this node and our directory), not exited."""
        pid = self.pid
        if pid is None:
            return False
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            return False
        mine = f"-Dvolreg.rocketmq={self._node} " in cmdline and str(self._rocket.root) in cmdline
        return mine and state != "Z"

    async def start(self) -> float:
        return await self._rocket.start()

    async def kill(self) -> None:
        """SIGKILL the JVM: no shutdown hook, no flush; wait until it and its port are gone."""
        pid = self.pid
        if pid is None or not self.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + _GONE_S
        while time.monotonic() < deadline:
            if not self.alive() and not await port_open(self.port):
                return
            await asyncio.sleep(0.05)
