"""What every ``volreg`` subcommand's ``--help`` tells beyond its options: a description, the
settings it reads with the values in effect now, and its exit codes."""

from __future__ import annotations

import argparse
import textwrap
from importlib import metadata
from urllib.parse import urlsplit, urlunsplit

from service.core.settings import Settings
from service.core.settings_rules import env_name

_COMMON_EXITS = {0: "done", 2: "invalid settings or arguments (each problem on stderr)"}

# name: (description, settings it reads, exit codes besides the common ones)
COMMANDS: dict[str, tuple[str, tuple[str, ...], dict[int, str]]] = {
    "serve": (
        "Run the HTTP API. Saves go Redis → broker (confirmed) → Redis; with --workers N the "
        "processes share the port (SO_REUSEPORT) and any one's /metrics sums them all. "
        "SIGTERM stops accepting and lets saves in flight finish.",
        (
            "http_host", "http_port", "redis_url", "redis_cluster_nodes", "amqp_url",
            "mysql_dsn", "mysql_shards", "token_secret", "shards", "queues", "log_level",
            "access_log_sample", "ready_connect_grace_s", "probe_interval_s",
        ),
        {0: "stopped cleanly", 1: "a worker process failed"},
    ),
    "consume": (
        "Persist saved forms from the quorum queues to MySQL in version-guarded batches; "
        "undecodable or refused messages go to the dead-letter queue with the reason. Serves "
        "/metrics and health on VOLREG_CONSUMER_HTTP_PORT.",
        (
            "amqp_url", "mysql_dsn", "mysql_shards", "shards", "queues", "consume_batch",
            "consume_wait_ms", "consume_prefetch", "delivery_limit", "consumer_http_port",
            "consumer_stats_interval_s", "log_level",
        ),
        {0: "stopped on SIGTERM/SIGINT (the batch in hand written and acked)"},
    ),
    "hot": (
        "Aggregate hot-item events (choices of saves, keys of reads) from their queue into "
        "MySQL minute totals and Redis minute/hour/batch buckets, each message once; rebuild "
        "the buckets from MySQL when Redis lost them; push keys read above the threshold to "
        "every API process. Run one.",
        (
            "redis_url", "redis_cluster_nodes", "amqp_url", "mysql_dsn", "mysql_shards",
            "hot_queue_max", "hot_key_threshold", "hot_key_ttl_s", "hot_push_interval_s",
            "log_level",
        ),
        {0: "stopped on SIGTERM/SIGINT (messages not acked are redelivered)"},
    ),
    "migrate": (
        "Create or upgrade the MySQL schema of every database of the shard map, and record "
        "the shard count that every other command then checks.",
        ("mysql_dsn", "mysql_shards", "shards"),
        {},
    ),
    "gen-data": ("Write a synthetic candidates CSV (or .csv.gz) for imports, load tests.", (), {}),
    "import": (
        "Load candidates with exam results, or teachers, from a CSV (or .csv.gz) into MySQL "
        "and Redis. An interrupted import of the same file resumes from its checkpoint.",
        (
            "mysql_dsn", "mysql_shards", "redis_url", "redis_cluster_nodes", "shards",
            "import_batch_rows", "import_writers", "import_run_rows",
        ),
        {1: "finished, some rows rejected (listed)", 3: "stopped before the end (resumable)"},
    ),
    "admin": (
        "Create or update a staff account; the password comes from VOLREG_NEW_PASSWORD or a "
        "prompt.",
        ("mysql_dsn", "mysql_shards", "argon2_time_cost", "argon2_memory_kib"),
        {},
    ),
    "batch": (
        "Create or change an admission batch and its filing window; API processes learn it "
        "through the catalogue broadcast.",
        ("mysql_dsn", "mysql_shards", "redis_url", "amqp_url"),
        {},
    ),
    "reconcile": (
        "Compare each form's version in Redis and MySQL and repair drift (the newer wins, "
        "compare-and-set). Without --once: scheduled runs, /status and /metrics on "
        "VOLREG_RECONCILE_HTTP_PORT.",
        (
            "redis_url", "redis_cluster_nodes", "mysql_dsn", "mysql_shards", "shards",
            "reconcile_grace_s", "reconcile_interval_s", "reconcile_full_interval_s",
            "reconcile_overlap_s", "reconcile_batch", "reconcile_lock_ttl_s",
            "reconcile_http_port",
        ),
        {
            0: "--once: no drift left",
            1: "--once: unrepaired drift remains",
            2: "invalid settings or arguments, or a dependency failed mid-run",
            75: "--once: another run holds the lock (try again later)",
        },
    ),
    "warmup": (
        "Reload Redis from MySQL (after Redis lost its data), never overwriting a newer "
        "version.",
        ("redis_url", "redis_cluster_nodes", "mysql_dsn", "mysql_shards", "warmup_batch"),
        {2: "invalid settings or arguments, or a dependency failed"},
    ),
    "status": (
        "One screen for an operator: each server answering (as the application logs in), the "
        "shard count against the recorded one, messages waiting per queue and in the "
        "dead-letter queue, the last reconcile runs, the imports still running.",
        ("redis_url", "redis_cluster_nodes", "amqp_url", "mysql_dsn", "mysql_shards", "shards"),
        {1: "a server does not answer, or the shard count differs from the recorded one"},
    ),
    "loadtest": ("Benchmark a deployment with wrk (report, ratios, plots).", (), {}),
    "chaos": (
        "Kill -9 and restart private Redis/RabbitMQ/MariaDB/API/consumer processes under "
        "load and verify that no acknowledged save is lost.",
        (),
        {1: "a check failed (lost, mismatched or phantom saves)"},
    ),
}  # fmt: skip


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Option defaults shown, and the epilog's lines kept as written."""


def version() -> str:
    try:
        return metadata.version("volreg")
    except metadata.PackageNotFoundError:
        return "unknown"


def masked(field: str, value: object) -> str:
    """A setting as --help may print it: no password, no secret."""
    if field == "token_secret":
        return "(development secret)" if Settings().token_secret == value else "(set)"
    if field.endswith("password"):
        return "(set)" if value else "(none)"
    text = str(value)
    if "://" not in text:
        return text
    out = []
    for url in text.split(","):
        head, sep, tail = url.partition("=")  # shard maps: "0-127=mysql://..."
        target = tail if sep and "://" in tail else url
        parts = urlsplit(target.strip())
        if parts.password:
            host = parts.netloc.rpartition("@")[2]
            parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
        clean = urlunsplit(parts)
        out.append(f"{head}={clean}" if target is tail else clean)
    return ",".join(out)


def epilog(command: str, settings: Settings) -> str:
    _, fields, exits = COMMANDS[command]
    lines = []
    if fields:
        lines.append("environment (in effect now; VOLREG_ENV_FILE under the environment):")
        lines += [f"  {env_name(f)}={masked(f, getattr(settings, f))}" for f in fields]
        lines.append("  every VOLREG_* setting: README, Configuration")
    lines.append("exit codes:")
    lines += [f"  {code:<3} {text}" for code, text in sorted({**_COMMON_EXITS, **exits}.items())]
    return "\n".join(lines)


def describe(sub: argparse._SubParsersAction[argparse.ArgumentParser], settings: Settings) -> None:
    """Give every subparser its description, epilog and the formatter that shows defaults."""
    for name, p in sub.choices.items():
        if name not in COMMANDS:
            continue
        p.description = textwrap.fill(COMMANDS[name][0], width=88)
        p.epilog = epilog(name, settings)
        p.formatter_class = Formatter
