"""The ``chaos`` subcommand of ``volreg`` (the harness is in ``loadtest.chaos``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from loadtest.chaos_faults import BROKERS, FAULTS, SABOTAGE, faults_for
from service.core.settings import Settings


def add_chaos(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "chaos",
        help="kill -9 and restart private Redis/RabbitMQ (or RocketMQ)/MariaDB/API/consumer, "
        "partition or slow their links, under load; fail when an acknowledged save is lost",
    )
    p.add_argument("--rounds", type=int, default=5, help="one fault per round, in turn")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per round")
    p.add_argument("--json", type=Path, help="write the JSON report here (and a .md beside)")
    p.add_argument("--clients", type=int, default=24, help="concurrent saving clients")
    p.add_argument("--forms", type=int, default=400, help="distinct forms saved")
    p.add_argument(
        "--broker",
        choices=BROKERS,
        default="rabbitmq",
        help="the form broker the harness starts and kills (RocketMQ: name server and proxy "
        "through scripts/rocketmq.sh, on ports of its own; RabbitMQ still carries the "
        "catalogue broadcast)",
    )
    p.add_argument(
        "--faults",
        help="comma-separated fault kinds, cycled through the rounds: "
        + ", ".join(FAULTS)
        + f"; default: all of the broker's (RabbitMQ: {', '.join(faults_for('rabbitmq'))}; "
        + f"RocketMQ: {', '.join(faults_for('rocketmq'))})",
    )
    p.add_argument(
        "--sabotage",
        help="self-test: in the last round also damage the stores behind the service's back ("
        + ", ".join(SABOTAGE)
        + "); the run must then fail",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the data directories and logs")
    p.add_argument(
        "--warmup-bench",
        type=int,
        metavar="FORMS",
        help="instead of chaos: load FORMS forms into a private MariaDB and time a warm-up "
        "of a private Redis",
    )
    p.set_defaults(run=_chaos)


def _chaos(_settings: Settings, args: argparse.Namespace) -> int:
    from loadtest.chaos import main

    return main(args)
