"""Send-to-ack time of one form message on each broker, measured from one process, the variants
taking turns round by round (a shared machine's noise falls on all of them alike):

- ``rabbitmq``: a publish to a quorum queue until its publisher confirm;
- ``rocketmq``: a plain send until its SendReceipt (SYNC_FLUSH);
- ``rocketmq-tx``: a transactional half message until its SendReceipt, then the commit until
  the broker's answer (what a transactional save waits for, besides its Redis commit).

Each round sends ``count`` messages one after another (latency) and ``count`` more from
``concurrency`` senders (sends/s), and reads the broker processes' CPU time from /proc before
and after. Nothing consumes them: every variant uses queues/topics of its own, deleted after.

    python -m loadtest.broker_sends [--count 200] [--rounds 3] [--concurrency 16] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import orjson

from loadtest import machine, processes
from schemas.records import FormRecord
from service.core import codec
from service.core.names import names_of
from service.core.settings import Settings, environment
from service.storage import rabbit, rocket

VARIANTS = ("rabbitmq", "rocketmq", "rocketmq-tx")
_CONNECT_S = 60.0
_ROUND_LIMIT_S = 120.0  # per variant and round: a bound on a stuck broker
_IDLE_S = 5.0  # broker CPU with nothing sent: the floor under every figure per send
_PAYLOAD = codec.pack([{"institution": f"{10001 + i}", "majors": ["080901"]} for i in range(6)])

Send = Callable[[FormRecord], Awaitable[None]]


def _settings_of(base: Settings, variant: str) -> Settings:
    return dataclasses.replace(
        base,
        broker="rabbitmq" if variant == "rabbitmq" else "rocketmq",
        rocketmq_transactions=variant == "rocketmq-tx",
        queue_prefix=f"volreg-sends-{variant}-{uuid.uuid4().hex[:6]}",
    )


async def _no_answer(record: FormRecord) -> bool | None:
    return None  # every half message is committed at once; none is left to ask about


@asynccontextmanager
async def _sender(settings: Settings, variant: str) -> AsyncIterator[Send]:
    names = names_of(settings)
    if variant == "rabbitmq":
        async with rabbit.open_broker(settings, names) as broker:
            await broker.wait_connected(_CONNECT_S)
            try:
                yield broker.publish
            finally:
                channel = await broker.connection().channel()
                for queue in [*names.all_queues, names.dead_letter_queue]:
                    await channel.queue_delete(queue)
                await channel.close()
        return
    async with rocket.open_broker(settings, names, _no_answer) as rocket_broker:
        await rocket_broker.wait_connected(_CONNECT_S)

        async def transactional(record: FormRecord) -> None:
            half = await rocket_broker.publish_half(record)
            await half.commit()

        try:
            yield transactional if settings.rocketmq_transactions else rocket_broker.publish
        finally:
            await rocket.delete_topology(settings, names)


@dataclasses.dataclass
class _Tally:
    latencies_ms: list[float] = dataclasses.field(default_factory=list)
    concurrent_sends: int = 0
    concurrent_s: float = 0.0
    broker_cpu_s: float = 0.0
    sends: int = 0
    idle_share: float | None = None  # of one core, with nothing sent


class _Records:
    def __init__(self) -> None:
        self._version = 0

    def next(self) -> FormRecord:
        self._version += 1
        candidate = f"{110105200601010000 + self._version % 1000:018d}"
        now_us = time.time_ns() // 1000
        return FormRecord(candidate, "bench", self._version, now_us, "saved", _PAYLOAD)


def _broker_cpu_s(pids: list[int]) -> float:
    return sum(processes.process_cpu_s(pid) or 0.0 for pid in pids)


async def _round(
    send: Send, records: _Records, count: int, concurrency: int, tally: _Tally
) -> None:
    async with asyncio.timeout(_ROUND_LIMIT_S):
        for _ in range(count):
            started = time.perf_counter()
            await send(records.next())
            tally.latencies_ms.append((time.perf_counter() - started) * 1000)
        left = count

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await send(records.next())

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        tally.concurrent_s += time.perf_counter() - started
        tally.concurrent_sends += count
    tally.sends += 2 * count


def _summary(tally: _Tally) -> dict[str, Any]:
    lat = sorted(tally.latencies_ms)
    return {
        "sequential_sends": len(lat),
        "median_ms": round(statistics.median(lat), 3) if lat else None,
        "p99_ms": round(lat[min(len(lat) - 1, int(len(lat) * 0.99))], 3) if lat else None,
        "sends_per_s": (
            round(tally.concurrent_sends / tally.concurrent_s, 1) if tally.concurrent_s else None
        ),
        "broker_cpu_ms_per_send": (
            round(tally.broker_cpu_s * 1000 / tally.sends, 3) if tally.sends else None
        ),
        "broker_idle_core_share": tally.idle_share,
    }


async def measure(
    base: Settings, count: int, rounds: int, concurrency: int, variants: tuple[str, ...]
) -> dict[str, Any]:
    tallies = {v: _Tally() for v in variants}
    records = _Records()
    load_before = machine.loadavg()
    async with AsyncExitStack() as stack:
        senders: dict[str, tuple[Send, list[int]]] = {}
        for variant in variants:
            settings = _settings_of(base, variant)
            send = await stack.enter_async_context(_sender(settings, variant))
            servers = processes.find_servers(settings)
            pids = [servers[r] for r in ("broker", "namesrv") if r in servers]
            senders[variant] = (send, pids)
            await send(records.next())  # the first send fetches routes, opens channels
            idle_before = _broker_cpu_s(pids)
            await asyncio.sleep(_IDLE_S)
            tallies[variant].idle_share = round((_broker_cpu_s(pids) - idle_before) / _IDLE_S, 3)
        for _ in range(rounds):
            for variant, (send, pids) in senders.items():
                cpu_before = _broker_cpu_s(pids)
                await _round(send, records, count, concurrency, tallies[variant])
                tallies[variant].broker_cpu_s += _broker_cpu_s(pids) - cpu_before
    return {
        "meta": {
            "count_per_round": count,
            "rounds": rounds,
            "concurrency": concurrency,
            "loadavg_before": load_before,
            "loadavg_after": machine.loadavg(),
            "machine": machine.describe(),
        },
        "variants": {v: _summary(t) for v, t in tallies.items()},
    }


def table(result: dict[str, Any]) -> list[str]:
    lines = [
        "| variant | median send-to-ack ms | p99 ms | sends/s "
        f"({result['meta']['concurrency']} senders) | broker CPU ms/send "
        "| idle broker CPU (share of a core) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, v in result["variants"].items():
        lines.append(
            f"| {name} | {v['median_ms']} | {v['p99_ms']} | {v['sends_per_s']} "
            f"| {v['broker_cpu_ms_per_send']} | {v.get('broker_idle_core_share')} |"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--count", type=int, default=200, help="sends per variant, round and mode")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    variants = tuple(v for v in args.variants.split(",") if v)
    if not 1 <= args.count <= 5000 or not 1 <= args.rounds <= 10 or args.concurrency < 1:
        print("--count 1-5000, --rounds 1-10, --concurrency >= 1", file=sys.stderr)
        return 2
    if unknown := set(variants) - set(VARIANTS):
        print(f"unknown variants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    result = asyncio.run(
        measure(
            Settings.from_env(environment()), args.count, args.rounds, args.concurrency, variants
        )
    )
    if args.json:
        args.json.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print("\n".join(table(result)))
    print(
        f"load average before {result['meta']['loadavg_before']}, after "
        f"{result['meta']['loadavg_after']}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
