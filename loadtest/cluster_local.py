"""Private Redis, RabbitMQ and MariaDB servers for the chaos harness: spare loopback ports,
data directories under one temporary directory, started, killed (SIGKILL) and restarted by
us alone. The machine's own servers are never touched."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import socket
import time
from collections.abc import Sequence
from pathlib import Path

from loadtest.children import Child, port_open

# Server binaries live in sbin, often not on a normal user's PATH.
_SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
# The plain start script: the packaged wrapper would switch to the rabbitmq user.
_RABBIT_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
_APP_USER = "volreg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def which(name: str) -> str:
    path = shutil.which(name, path=os.pathsep.join([os.environ.get("PATH", ""), *_SBIN]))
    if path is None:
        raise RuntimeError(f"{name} not found; run 'make deps' to install the servers")
    return path


class Server(Child):
    """One server process in a session of its own, so a SIGKILL reaches all its processes."""

    name = "server"
    boot_timeout_s = 60.0

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root / self.name
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()

    def command(self) -> Sequence[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return dict(os.environ)

    async def prepare(self) -> None:
        """First start only (create the data directory)."""

    async def ready(self) -> bool:
        return await port_open(self.port)

    async def start(self) -> float:
        """Start and wait until it answers; returns the seconds that took."""
        started = time.monotonic()
        log = self.root / "server.log"
        await self.spawn(self.command(), self.environment(), log, cwd=self.root)
        try:
            await self.wait_until(self.ready, self.boot_timeout_s, f"{self.name} ({log})")
        except RuntimeError:
            await self.kill()
            raise
        return time.monotonic() - started

    async def after_exit(self, pgid: int, wait_s: float) -> None:
        # Children (beam.smp, mariadbd) may outlive their parent shell for a moment: a
        # restart must not mistake the dying server's open port for the new one.
        deadline = time.monotonic() + wait_s
        while await port_open(self.port) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            await asyncio.sleep(0.05)


class RedisServer(Server):
    """No persistence: a restart comes back empty, as the chaos round intends. Clients need
    its password, as a deployment's would."""

    name = "redis"

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.password = secrets.token_hex(12)

    @property
    def url(self) -> str:
        return f"redis://:{self.password}@127.0.0.1:{self.port}/0"

    def command(self) -> Sequence[str]:
        return [
            which("redis-server"),
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(self.root),
            "--requirepass", self.password,
        ]  # fmt: skip


class RabbitServer(Server):
    """A one-node broker. Its quorum queues live in the data directory and survive SIGKILL;
    the node name stays the same across restarts so it finds them again."""

    name = "rabbitmq"
    boot_timeout_s = 120.0

    def __init__(
        self,
        root: Path,
        disk_mb: int = 0,
        *,
        name: str = "rabbitmq",
        cookie: str = "",
        password: str = "",
        epmd_port: int = 0,
        join: str = "",
    ) -> None:
        """The keywords make it a member of a cluster: every node gets the same ``cookie`` and
        ``password`` and the ``epmd_port`` of an epmd of the cluster's own; ``join`` names the
        node a blank member joins on its first boot."""
        self.name = name
        super().__init__(root)
        self.disk_mb = disk_mb  # > 0: the data directory is a tmpfs this small (disk-full)
        self.data = self.root / "mnesia"
        self._mounted = False
        self.dist_port = free_port()
        self.node = f"volreg-{name}-{secrets.token_hex(4)}@localhost"
        self._cookie = cookie or secrets.token_hex(16)
        self._password = password or secrets.token_hex(12)
        self._epmd_port = epmd_port
        self._join = join

    vhost = _APP_USER

    @property
    def url(self) -> str:
        return f"amqp://{_APP_USER}:{self._password}@127.0.0.1:{self.port}/{self.vhost}"

    async def prepare(self) -> None:
        home = self.root / "home"
        for sub in ("home", "mnesia", "log"):
            (self.root / sub).mkdir(exist_ok=True)
        if self.disk_mb:
            await _run(
                "mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m", "tmpfs", str(self.data)
            )
            self._mounted = True
        cookie = home / ".erlang.cookie"
        cookie.write_text(self._cookie)
        cookie.chmod(0o400)  # Erlang refuses a cookie others can read
        (self.root / "enabled_plugins").write_text("[].\n")  # no management plugin
        (self.root / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            # A user of our own instead of guest (created on the node's first boot).
            f"default_user = {_APP_USER}\n"
            f"default_pass = {self._password}\n"
            f"default_vhost = {_APP_USER}\n"
            # Small files, so that a small data directory (the disk-full round) suffices; the
            # disk alarm blocks publishers before the directory is full.
            "raft.wal_max_size_bytes = 8000000\n"
            "disk_free_limit.absolute = 4MB\n"
            "vm_memory_high_watermark.relative = 0.2\n"
        )
        if self._join:
            with (self.root / "rabbitmq.conf").open("a") as conf:
                conf.write(
                    "cluster_formation.peer_discovery_backend = classic_config\n"
                    f"cluster_formation.classic_config.nodes.1 = {self._join}\n"
                )

    def command(self) -> Sequence[str]:
        return [str(_RABBIT_SCRIPT) if _RABBIT_SCRIPT.exists() else which("rabbitmq-server")]

    async def unmount(self) -> None:
        if self._mounted:
            await _run("umount", "--lazy", str(self.data))
            self._mounted = False

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            HOME=str(self.root / "home"),
            RABBITMQ_NODENAME=self.node,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.dist_port),
            RABBITMQ_MNESIA_BASE=str(self.data),
            RABBITMQ_LOG_BASE=str(self.root / "log"),
            RABBITMQ_CONFIG_FILE=str(self.root / "rabbitmq.conf"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(self.root / "enabled_plugins"),
        )
        if self._epmd_port:
            env["ERL_EPMD_PORT"] = str(self._epmd_port)
        return env


class MariaServer(Server):
    """A private MariaDB with durable commits and the application's own user."""

    name = "mariadb"

    def __init__(self, root: Path, buffer_pool_mb: int = 128) -> None:
        super().__init__(root)
        self._buffer_pool_mb = buffer_pool_mb
        self.socket = self.root / "mysqld.sock"
        self._password = secrets.token_hex(12)

    def dsn(self, database: str) -> str:
        return f"mysql://{_APP_USER}:{self._password}@127.0.0.1:{self.port}/{database}"

    def _as_root(self) -> list[str]:
        return ["--user=root"] if os.geteuid() == 0 else []

    async def prepare(self) -> None:
        install = await asyncio.create_subprocess_exec(
            which("mariadb-install-db"),
            "--no-defaults",
            f"--datadir={self.root / 'data'}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            *self._as_root(),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await install.communicate()
        if install.returncode != 0:
            raise RuntimeError(f"mariadb-install-db failed: {err.decode()[-500:]}")

    def command(self) -> Sequence[str]:
        return [
            which("mariadbd"),
            "--no-defaults",
            f"--datadir={self.root / 'data'}",
            f"--socket={self.socket}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--pid-file={self.root / 'mysqld.pid'}",
            "--skip-name-resolve",
            "--innodb-flush-log-at-trx-commit=1",
            f"--innodb-buffer-pool-size={self._buffer_pool_mb}M",
            "--max-connections=500",
            *self._as_root(),
        ]

    async def create_app_user(self) -> None:
        """Root may log in only through our socket; the service gets a user of its own."""
        user = f"'{_APP_USER}'@'127.0.0.1'"
        await self.as_root(
            f"CREATE USER IF NOT EXISTS {user} IDENTIFIED BY '{self._password}';"
            f"GRANT ALL PRIVILEGES ON *.* TO {user};"
        )

    async def as_root(self, sql: str) -> str:
        """Run ``sql`` as root through the socket (behind the service's back); its output."""
        client = await asyncio.create_subprocess_exec(
            which("mariadb"),
            "--no-defaults",
            f"--socket={self.socket}",
            "-uroot",
            "--batch",
            "--skip-column-names",
            "-e",
            sql,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await client.communicate()
        if client.returncode != 0:
            raise RuntimeError(f"mariadb as root failed: {err.decode()[-500:]}")
        return out.decode()


async def _run(*argv: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {err.decode()[-300:]}")


class LocalCluster:
    def __init__(self, root: Path, buffer_pool_mb: int = 128, broker_disk_mb: int = 0) -> None:
        self.redis = RedisServer(root)
        self.rabbit = RabbitServer(root, broker_disk_mb)
        self.mariadb = MariaServer(root, buffer_pool_mb)

    @property
    def servers(self) -> list[Server]:
        return [self.redis, self.rabbit, self.mariadb]

    async def start(self, with_broker: bool = True) -> None:
        servers = self.servers if with_broker else [self.redis, self.mariadb]

        async def first_start(server: Server) -> None:
            await server.prepare()
            await server.start()

        await asyncio.gather(*(first_start(s) for s in servers))
        await self.mariadb.create_app_user()

    async def stop(self) -> None:
        await asyncio.gather(*(s.stop() for s in self.servers), return_exceptions=True)
        await self.rabbit.unmount()
