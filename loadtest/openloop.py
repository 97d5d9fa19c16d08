"""Open-loop load: requests sent at a fixed arrival rate whatever the answers, latency measured
from each request's intended send time, so queueing in the server is not hidden the way a
closed loop (wrk: the next request only after the answer) hides it.

Raw HTTP/1.1 on keep-alive connections (no client library per request: the generator shares
the machine's CPU with the servers). Every run is bounded in count and in time."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

_MAX_CONNECTIONS = 512
_HEADER_END = b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Plan:
    url: str  # the API's base URL (loopback)
    requests: Sequence[bytes]  # complete HTTP/1.1 requests, sent in turn
    rate: float  # requests per second
    duration_s: float
    max_requests: int
    timeout_s: float


@dataclass
class Outcome:
    offered_rps: float
    sent: int = 0
    ok: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    late_ms: list[float] = field(default_factory=list)  # actual send after the intended time
    seconds: float = 0.0
    connections: int = 0

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def to_json(self) -> dict[str, Any]:
        lat = sorted(self.latencies_ms)
        late = sorted(self.late_ms)
        return {
            "offered_rps": self.offered_rps,
            "sent": self.sent,
            "ok": self.ok,
            "achieved_rps": round(self.ok / self.seconds, 1) if self.seconds else 0.0,
            "errors": {**self.errors, "total": sum(self.errors.values())},
            "latency_ms_from_intended": {
                p: round(percentile(lat, q), 3) if lat else None
                for p, q in (("p50", 50), ("p90", 90), ("p99", 99), ("max", 100))
            },
            "send_late_ms_p99": round(percentile(late, 99), 3) if late else None,
            "seconds": round(self.seconds, 3),
            "connections": self.connections,
        }


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of an ascending sequence (not empty)."""
    rank = max(1, min(len(ordered), math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def put_request(host: str, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"PUT {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _answer(reader: asyncio.StreamReader) -> int:
    """Read one response; its status code."""
    head = await reader.readuntil(_HEADER_END)
    status_line, _, rest = head.partition(b"\r\n")
    status = int(status_line.split(b" ", 2)[1])
    length = 0
    for line in rest.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def run(plan: Plan) -> Outcome:
    """Send ``min(rate * duration, max_requests)`` requests at their intended times."""
    target = urlsplit(plan.url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    total = min(plan.max_requests, int(plan.rate * plan.duration_s))
    outcome = Outcome(plan.rate)
    idle: list[_Connection] = []
    tasks: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def one(index: int, intended: float) -> None:
        conn = idle.pop() if idle else None
        try:
            async with asyncio.timeout(plan.timeout_s):
                if conn is None:
                    if outcome.connections >= _MAX_CONNECTIONS:
                        outcome.error("no_connection")
                        return
                    outcome.connections += 1
                    conn = _Connection(*await asyncio.open_connection(host, port))
                outcome.late_ms.append((loop.time() - intended) * 1000)
                conn.writer.write(plan.requests[index % len(plan.requests)])
                status = await _answer(conn.reader)
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError) as exc:
            outcome.error(type(exc).__name__)
            if conn is not None:
                await conn.close()
            return
        outcome.latencies_ms.append((loop.time() - intended) * 1000)
        if 200 <= status < 300:
            outcome.ok += 1
        else:
            outcome.error(str(status))
        idle.append(conn)

    started = loop.time()
    for index in range(total):
        intended = started + index / plan.rate
        delay = intended - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(index, intended), name="open-loop-request")
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        outcome.sent += 1
    if tasks:
        await asyncio.wait(tasks, timeout=plan.timeout_s + 1)
    outcome.seconds = loop.time() - started
    for conn in idle:
        await conn.close()
    return outcome
