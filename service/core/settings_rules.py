"""What each setting may hold beyond its type: ranges, URL schemes, names; and the ``VOLREG_*``
variables that are no setting (typos are refused with the nearest name)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
BROKERS = ("rabbitmq", "rocketmq")
# The trailing five digits of a resident ID pick the shard (domain.ids.shard_of).
MAX_SHARDS = 100_000
_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_HOST_PORT = re.compile(r"^[^\s:,]+:\d{1,5}$")

# VOLREG_* variables read by something other than Settings: commands, scripts, the tests.
OTHER_VARIABLES = frozenset(
    {
        "VOLREG_ENV_FILE",  # settings.environment(): the env file to read
        "VOLREG_NEW_PASSWORD",  # volreg admin
        "VOLREG_DB_ADMIN_USER",  # scripts/ensure-deps.sh
        "VOLREG_DB_ADMIN_PASSWORD",
        "VOLREG_BROKER",  # scripts/ensure-deps.sh: which broker to install
    }
)
# Test-suite switches (tests/support.py, tests/system/cluster/topology.py).
OTHER_PREFIXES = ("VOLREG_TEST_",)


class SettingsError(ValueError):
    """Settings that cannot run; one line per problem, each naming its variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Bound:
    low: float | None = None
    high: float | None = None
    # True: the value must be greater than ``low`` (timeouts, intervals), not equal to it.
    exclusive: bool = False

    def problem(self, value: float) -> str | None:
        if self.low is not None and (value <= self.low if self.exclusive else value < self.low):
            if self.high is not None:
                return f"must be between {_num(self.low)} and {_num(self.high)}"
            return f"must be {'greater than' if self.exclusive else 'at least'} {_num(self.low)}"
        if self.high is not None and value > self.high:
            if self.low is not None:
                return f"must be between {_num(self.low)} and {_num(self.high)}"
            return f"must be at most {_num(self.high)}"
        return None


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


AT_LEAST_1 = Bound(1)
AT_LEAST_0 = Bound(0)
POSITIVE = Bound(0, exclusive=True)
PORT = Bound(1, 65535)
PORT_OR_OFF = Bound(0, 65535)

# Every int/float setting has a bound (tests/test_settings.py checks that none is missing).
BOUNDS: dict[str, Bound] = {
    "http_port": PORT,
    "reconcile_http_port": PORT,
    "consumer_http_port": PORT_OR_OFF,
    "quorum_initial_group_size": AT_LEAST_0,
    "token_ttl_s": AT_LEAST_1,
    "login_failures_limit": AT_LEAST_0,
    "login_failures_window_s": AT_LEAST_1,
    "login_client_failures_limit": AT_LEAST_0,
    "login_global_limit": AT_LEAST_0,
    "login_global_window_s": AT_LEAST_1,
    "login_hash_workers": AT_LEAST_1,
    "login_hash_queue": AT_LEAST_0,
    "token_generation_local_ttl_s": AT_LEAST_0,
    "token_generation_redis_ttl_s": AT_LEAST_1,
    "save_rate_limit": AT_LEAST_0,
    "save_rate_window_s": AT_LEAST_1,
    "idempotency_keys_max": AT_LEAST_0,
    # Far enough for a clock step; a bound at all, so a planted version cannot live forever.
    "version_max_ahead_s": Bound(1, 30 * 24 * 3600),
    "http_header_timeout_s": POSITIVE,
    "http_body_timeout_s": POSITIVE,
    "import_lease_s": POSITIVE,
    "shards": Bound(1, MAX_SHARDS),
    "queues": AT_LEAST_1,  # and at most shards, checked below
    "chunk_bytes": Bound(64),
    "max_body_bytes": Bound(1024),
    "idempotency_ttl_s": AT_LEAST_1,
    "redis_timeout_s": POSITIVE,
    "broker_timeout_s": POSITIVE,
    "mysql_timeout_s": POSITIVE,
    "retry_after_s": AT_LEAST_1,
    "ready_connect_grace_s": AT_LEAST_0,
    "probe_interval_s": POSITIVE,
    "redis_pool_size": AT_LEAST_1,
    "mysql_pool_size": AT_LEAST_1,
    "group_max_records": AT_LEAST_1,
    "group_max_bytes": AT_LEAST_1,
    "group_window_ms": AT_LEAST_0,
    "group_max_in_flight": AT_LEAST_0,
    "bench_naive_pool_size": AT_LEAST_1,
    "consume_batch": AT_LEAST_1,
    "consume_wait_ms": AT_LEAST_0,
    "consume_prefetch": AT_LEAST_1,
    "consumer_stats_interval_s": POSITIVE,
    "delivery_limit": AT_LEAST_1,
    # The broker refuses acks of receipt handles shorter than about 10 s (README: Brokers).
    "rocketmq_invisible_s": Bound(10),
    # Within the broker's check interval (scripts/rocketmq.sh: 5 s), so answers do not pile up.
    "rocketmq_check_timeout_s": Bound(0, 5, exclusive=True),
    "catalogue_ttl_s": AT_LEAST_0,
    "catalogue_local_entries": AT_LEAST_1,
    "catalogue_redis_ttl_s": AT_LEAST_1,
    "exam_local_entries": AT_LEAST_1,
    "exam_local_ttl_s": AT_LEAST_0,
    "import_batch_rows": AT_LEAST_1,
    "import_writers": AT_LEAST_1,
    "import_run_rows": AT_LEAST_1,
    "import_read_timeout_s": POSITIVE,
    # At most what service.core.passwords verifies (it refuses costlier hashes).
    "argon2_time_cost": Bound(1, 10),
    "argon2_memory_kib": Bound(8, 64 * 1024),  # argon2's own minimum (8 KiB per lane)
    "access_log_sample": Bound(0, 1),
    "reconcile_grace_s": AT_LEAST_0,
    "reconcile_interval_s": POSITIVE,
    "reconcile_full_interval_s": POSITIVE,
    "reconcile_overlap_s": AT_LEAST_0,
    "reconcile_batch": AT_LEAST_1,
    "reconcile_lock_ttl_s": POSITIVE,
    "warmup_batch": AT_LEAST_1,
    "hot_flush_s": AT_LEAST_0,  # 0: no hot-item events
    "hot_buffer_entries": AT_LEAST_1,
    "hot_queue_max": AT_LEAST_1,
    "hot_key_threshold": AT_LEAST_1,
    "hot_key_ttl_s": POSITIVE,
    "hot_push_interval_s": POSITIVE,
}


def env_name(field: str) -> str:
    return f"VOLREG_{field.upper()}"


def problems_of(values: Mapping[str, Any]) -> list[str]:
    """Every problem of a complete set of setting values (field name → value)."""
    out: list[str] = []

    def bad(field: str, message: str) -> None:
        out.append(f"{env_name(field)}={values[field]!r}: {message}")

    for field, value in values.items():
        bound = BOUNDS.get(field)
        if bound is not None and not isinstance(value, bool):
            problem = bound.problem(value)
            if problem:
                bad(field, problem)
    if values["queues"] > values["shards"] >= 1:
        bad("queues", f"must be between 1 and VOLREG_SHARDS ({values['shards']})")
    if values["log_level"].upper() not in LOG_LEVELS:
        bad("log_level", f"must be one of {', '.join(LOG_LEVELS)}")
    for field in ("key_prefix", "queue_prefix"):
        if not _PREFIX.match(values[field]):
            bad(field, "must be 1-64 letters, digits, '_', '.' or '-'")
    if not values["token_secret"]:
        bad("token_secret", "must not be empty")
    if not values["redis_cluster_nodes"]:
        scheme_problem = _scheme(values["redis_url"], ("redis", "rediss", "unix"))
        if scheme_problem:
            bad("redis_url", scheme_problem)
    else:
        for node in values["redis_cluster_nodes"].split(","):
            if not _HOST_PORT.match(node.strip()):
                bad("redis_cluster_nodes", f"expected host:port[,host:port...], got {node!r}")
                break
    if values["broker"] not in BROKERS:
        bad("broker", f"must be one of {', '.join(BROKERS)}")
    if values["rocketmq_transactions"] and values["broker"] != "rocketmq":
        bad("rocketmq_transactions", "needs VOLREG_BROKER=rocketmq")
    if values["broker"] == "rocketmq":
        for field in ("rocketmq_endpoints", "rocketmq_broker_addr"):
            addresses = [a.strip() for a in values[field].split(";") if a.strip()]
            if not addresses or not all(_HOST_PORT.match(a) for a in addresses):
                bad(field, "expected host:port[;host:port...]")
    urls = [u.strip() for u in values["amqp_url"].split(",") if u.strip()]
    if not urls:
        bad("amqp_url", "no broker URL given")
    for url in urls:
        scheme_problem = _scheme(url, ("amqp", "amqps"))
        if scheme_problem:
            bad("amqp_url", scheme_problem)
            break
    if not values["mysql_shards"]:
        scheme_problem = _scheme(values["mysql_dsn"], ("mysql",))
        if scheme_problem:
            bad("mysql_dsn", scheme_problem)
    else:
        for item in values["mysql_shards"].split(","):
            _, sep, dsn = item.strip().partition("=")
            scheme_problem = _scheme(dsn, ("mysql",)) if sep else "expected LOW-HIGH=DSN"
            if scheme_problem:
                bad("mysql_shards", f"{item.strip()!r}: {scheme_problem}")
                break
    return out


def _scheme(url: str, allowed: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        return f"not a URL ({exc})"
    expected = " or ".join(f"{s}://" for s in allowed)
    if parts.scheme not in allowed:
        return f"the scheme must be {expected}"
    if parts.scheme != "unix" and not parts.hostname:
        return "no host in the URL"
    return None


def unknown_variables(environ: Mapping[str, str], fields: Iterable[str]) -> list[str]:
    """``VOLREG_*`` variables that name no setting, each with the nearest setting's name."""
    known = {env_name(f) for f in fields}
    out = []
    for name in sorted(environ):
        if not name.startswith("VOLREG_") or name in known or name in OTHER_VARIABLES:
            continue
        if name.startswith(OTHER_PREFIXES):
            continue
        close = difflib.get_close_matches(name, sorted(known | OTHER_VARIABLES), n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]}?)" if close else ""
        out.append(f"{name}: no such setting{hint}")
    return out
