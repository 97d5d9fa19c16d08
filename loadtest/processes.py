"""CPU time of each process in the chain (API, consumer, Redis, broker, MySQL, load generator)
from /proc, so a scenario's cost per request is visible component by component."""

from __future__ import annotations

import os
import resource
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from loadtest import machine
from service.core.settings import Settings

# Process names that identify a server when its port cannot be traced to a process.
_SERVER_NAMES = {
    "redis": ("redis-server",),
    "broker": ("beam.smp",),
    "mysql": ("mariadbd", "mysqld"),
}
# RocketMQ's name server (a JVM like the proxy): found by its main class.
_NAMESRV_MAIN = b"org.apache.rocketmq.namesrv.NamesrvStartup"
_LISTEN = "0A"


def _port(url: str, default: int) -> int:
    first = url.split(",")[0].strip()
    return urlsplit(first).port or default


def server_ports(settings: Settings) -> dict[str, int]:
    """Each server's port. ``broker`` is the form broker: on RocketMQ the proxy's JVM (the
    broker runs inside it), and ``rabbitmq`` the RabbitMQ that still carries the broadcasts."""
    redis_url = settings.redis_url
    if settings.redis_cluster_nodes:
        redis_url = "redis://" + settings.redis_cluster_nodes.split(",")[0]
    ports = {
        "redis": _port(redis_url, 6379),
        "broker": _port(settings.amqp_url, 5672),
        "mysql": _port(settings.mysql_dsn, 3306),
    }
    if settings.broker == "rocketmq":
        ports["rabbitmq"] = ports["broker"]
        ports["broker"] = int(settings.rocketmq_endpoints.split(";")[0].rsplit(":", 1)[1])
    return ports


def _listening_inodes(port: int) -> set[str]:
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _LISTEN and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def _pid_of_socket(inodes: set[str]) -> int | None:
    wanted = {f"socket:[{i}]" for i in inodes}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            for fd in (proc / "fd").iterdir():
                if os.readlink(fd) in wanted:
                    return int(proc.name)
        except OSError:
            continue  # gone, or not ours to read
    return None


def _pid_by_name(names: Iterable[str]) -> int | None:
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() in names:
                return int(stat.parent.name)
        except OSError:
            continue
    return None


def find_servers(settings: Settings) -> dict[str, int]:
    """PIDs of the Redis, broker and MySQL servers the settings point at (the process that
    listens on each port; by name if that cannot be read). Missing ones are left out."""
    found = {}
    for role, port in server_ports(settings).items():
        pid = _pid_of_socket(_listening_inodes(port))
        if pid is None and role in _SERVER_NAMES:
            pid = _pid_by_name(_SERVER_NAMES[role])
        if pid is not None:
            found[role] = pid
    if settings.broker == "rocketmq" and (namesrv := _pid_by_cmdline(_NAMESRV_MAIN)):
        found["namesrv"] = namesrv
    return found


def _pid_by_cmdline(part: bytes) -> int | None:
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if part in cmdline.read_bytes():
                return int(cmdline.parent.name)
        except OSError:
            continue
    return None


def process_cpu_s(pid: int) -> float | None:
    """CPU seconds (user + system) of one process, all its threads; None when gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _self_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class ChainCpu:
    """CPU seconds per role between ``start()`` and ``stop()``. ``trees`` are counted with
    their direct children (the API's workers); the load generator is this process plus the
    wrk runs reaped meanwhile."""

    servers: Mapping[str, int]
    trees: Mapping[str, int]
    _before: dict[str, float] = field(default_factory=dict)
    used_s: dict[str, float] = field(default_factory=dict)

    def _now(self) -> dict[str, float]:
        now: dict[str, float] = {}
        for role, pid in self.servers.items():
            value = process_cpu_s(pid)
            if value is not None:
                now[role] = value
        for role, pid in self.trees.items():
            tree = machine.tree_cpu_s(pid)
            if tree is not None:
                now[role] = tree
        now["generator"] = _self_cpu_s() + machine.children_cpu_s()
        return now

    def start(self) -> None:
        self._before = self._now()

    def stop(self) -> None:
        after = self._now()
        self.used_s = {
            role: after[role] - self._before[role] for role in after if role in self._before
        }

    def ms_per_request(self, requests: int) -> dict[str, float]:
        if requests <= 0:
            return {}
        per = {role: round(s * 1000 / requests, 3) for role, s in self.used_s.items()}
        per["chain"] = round(sum(self.used_s.values()) * 1000 / requests, 3)
        return per
