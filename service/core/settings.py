"""Typed settings, built once at start-up from ``VOLREG_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from service.core.settings_rules import SettingsError, problems_of, unknown_variables

_DEV_SECRET = "volreg-dev-secret-change-me"
# Written by `make up` / `make test` (scripts/credentials.sh): the token secret and the URLs,
# with credentials, of the servers the project started. Relative to the working directory.
ENV_FILE = "var/volreg.env"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a volreg process needs; tests construct it directly."""

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    # Credentials go into the URLs; `make up` writes working ones into var/volreg.env.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Redis Cluster seed nodes "host:port,host:port"; when set, redis_url is not used.
    redis_cluster_nodes: str = ""
    # The cluster's credentials (AUTH on every node connection, as a single Redis takes them
    # from redis_url): requirepass, or an ACL user and its password.
    redis_cluster_username: str = ""
    redis_cluster_password: str = ""
    # One URL, or a comma-separated list of cluster nodes tried in order on (re)connect.
    amqp_url: str = "amqp://127.0.0.1:5672/"
    # Replicas of each new quorum queue (x-quorum-initial-group-size); 0 = broker default.
    quorum_initial_group_size: int = 0
    # The form broker: "rabbitmq" (quorum queues) or "rocketmq" (SYNC_FLUSH, scripts/rocketmq.sh).
    broker: str = "rabbitmq"
    # RocketMQ: the proxy's gRPC endpoint(s) "host:port;host:port" the clients talk to, and the
    # broker's remoting address where the service creates the topics it needs.
    rocketmq_endpoints: str = "127.0.0.1:28081"
    rocketmq_broker_addr: str = "127.0.0.1:20911"
    # A received message not acked within this many seconds is delivered again.
    rocketmq_invisible_s: int = 30
    # Saves as transactional half messages, committed after the Redis commit and rolled back
    # when it is refused; the broker's check-backs about undecided ones are answered from Redis
    # (or MySQL) within rocketmq_check_timeout_s (README: Brokers).
    rocketmq_transactions: bool = False
    rocketmq_check_timeout_s: float = 5.0
    mysql_dsn: str = "mysql://volreg@127.0.0.1:3306/volreg"
    # Shard map "0-127=mysql://...,128-255=mysql://..."; when set, mysql_dsn is not used.
    mysql_shards: str = ""
    # `volreg migrate` (and the tests' throw-away databases) connect as this user, the schema's
    # owner, to every database of mysql_dsn/mysql_shards; the application's own user may then
    # only read and write rows. Empty: as the application's user.
    mysql_migrate_user: str = ""
    mysql_migrate_password: str = ""
    token_secret: str = _DEV_SECRET
    # Older secrets still accepted when verifying tokens (comma-separated), so the secret can
    # be rotated without logging everyone out; drop them after token_ttl_s.
    token_previous_secrets: str = ""
    token_ttl_s: int = 8 * 3600
    # A static bearer token Prometheus may scrape /metrics with (tokens expire; a scraper
    # must not need an admin login). Empty: only admin tokens reach /metrics.
    metrics_token: str = ""
    # Revocation: each request compares its token's generation with the account's, from a
    # per-process copy this old at most, then Redis (this long), then MySQL. Logging out
    # updates Redis at once; imports and `volreg admin` reach running processes within both.
    token_generation_local_ttl_s: float = 5.0
    token_generation_redis_ttl_s: int = 30
    # Development only: accept a weak or missing token secret (with a warning). `make up` and
    # `make test` set it in var/volreg.env; a deployment never does.
    dev_mode: bool = False
    # Failed logins of one client address on one account before that address is refused
    # (429) on it for the window, and over all accounts (spraying; schools behind one NAT
    # address share it). Checked before hashing; 0 turns a limit off.
    login_failures_limit: int = 10
    login_failures_window_s: int = 300
    login_client_failures_limit: int = 300
    # Login attempts of the whole service (every process, every client; counted in Redis)
    # per window before further ones get 503 login_busy + Retry-After, checked before hashing:
    # size it to what the pods can hash (pods x login_hash_workers x ~20/s). 0 turns it off.
    login_global_limit: int = 500
    login_global_window_s: int = 1
    # Addresses (or CIDR blocks, comma-separated) of proxies whose X-Forwarded-For names the
    # client; from anyone else the header is ignored.
    trusted_proxies: str = ""
    # argon2 verifications run on this many threads; at most login_hash_queue more wait,
    # further logins get 503 + Retry-After at once.
    login_hash_workers: int = 2
    login_hash_queue: int = 32
    # Names that cross process boundaries get these prefixes so test runs can share servers.
    key_prefix: str = "vr"
    queue_prefix: str = "volreg"
    shards: int = 256
    queues: int = 4
    # A gzip-compressed form larger than this many bytes is split across several Redis keys.
    chunk_bytes: int = 4096
    max_body_bytes: int = 64 * 1024
    # A connection is closed when a request's headers have not all arrived this long after it
    # opened or after the previous response (also the keep-alive idle limit), and a JSON body
    # must arrive within http_body_timeout_s: slow clients cannot hold connections and memory.
    http_header_timeout_s: float = 15.0
    http_body_timeout_s: float = 10.0
    idempotency_ttl_s: int = 24 * 3600
    # Saves per candidate per window, sized for a person (each costs a broker fsync), and the
    # Idempotency-Keys one candidate may hold live at once (each lives idempotency_ttl_s).
    # 429 + Retry-After beyond either; 0 turns a limit off.
    save_rate_limit: int = 30
    save_rate_window_s: int = 60
    idempotency_keys_max: int = 200
    # A version (µs, Redis clock) further ahead of the clock than this is refused everywhere.
    version_max_ahead_s: int = 24 * 3600
    # Timeouts for every network await, in seconds.
    redis_timeout_s: float = 2.0
    broker_timeout_s: float = 5.0
    mysql_timeout_s: float = 5.0
    retry_after_s: int = 2
    # Readiness: a new process waits this long for its first connections before it reports
    # ready anyway; dependencies are pinged this often for /health/deps and the metrics.
    ready_connect_grace_s: float = 15.0
    probe_interval_s: float = 5.0
    redis_pool_size: int = 64
    # The save path's scripts share one multiplexed connection per process (far less CPU per
    # call than redis-py's pool); false sends them through the pool like everything else.
    redis_multiplex: bool = True
    mysql_pool_size: int = 10
    # Group commit at the publisher: saves for the same queue that arrive close together share
    # one broker message and one confirm. With nothing in flight a save goes at once; under
    # load a batch closes at this many records, bytes, or ms after its first save.
    group_commit: bool = True
    group_max_records: int = 64
    group_max_bytes: int = 128 * 1024
    group_window_ms: float = 2.0
    # Messages per queue awaiting confirms past which a batch waits for a confirm rather
    # than the window (0: the window alone decides).
    group_max_in_flight: int = 0
    # Consumer batching: a batch closes at this many records or this many ms after its first
    # message (a commit at most every 50 ms under load: <= 0.02 commits per save at 1,000/s).
    consume_batch: int = 2000
    consume_wait_ms: int = 50
    consume_prefetch: int = 2000
    # The consumer's own /metrics and health (0: off), and how often it samples queue depths.
    consumer_http_port: int = 8082
    consumer_stats_interval_s: float = 5.0
    # Quorum-queue redeliveries before the broker dead-letters a message (crash loops).
    delivery_limit: int = 20
    # Published catalogue (batches) is re-read from MySQL at most this often.
    catalogue_ttl_s: float = 5.0
    # Multi-level cache: entries per process, and how long the Redis copy lives (it is also
    # refreshed on every publish). catalogue_ttl_s bounds staleness when a broadcast is lost.
    catalogue_local_entries: int = 10_000
    catalogue_redis_ttl_s: int = 3600
    exam_local_entries: int = 50_000
    exam_local_ttl_s: float = 30.0
    # Bulk import: data rows per batch (and checkpoint), batches written concurrently, and the
    # longest wait for the next chunk of an upload.
    import_batch_rows: int = 5000
    import_writers: int = 3
    # Accepted rows are sorted in runs of this many before loading (memory: ~300 B a row).
    import_run_rows: int = 200_000
    import_read_timeout_s: float = 60.0
    # One run at a time per import job: its lease lasts this long and is renewed every third
    # of it; a run killed meanwhile delays a rerun by at most this.
    import_lease_s: float = 10.0
    argon2_time_cost: int = 2
    argon2_memory_kib: int = 19 * 1024
    log_level: str = "INFO"
    # Share of successful requests written to the access log (errors and slow ones always).
    access_log_sample: float = 1.0
    # Reconciler. Redis newer than MySQL is normal while a message is in flight (or parked in
    # the dead-letter queue): it counts as drift only when older than the grace period.
    reconcile_grace_s: float = 60.0
    reconcile_interval_s: float = 60.0
    reconcile_full_interval_s: float = 6 * 3600.0
    # Incremental runs look this far behind the previous run's start: a save stamped before
    # that start may commit after it (broker confirm wait), a row commits after its synced_at.
    reconcile_overlap_s: float = 30.0
    reconcile_batch: int = 500
    reconcile_lock_ttl_s: float = 60.0
    reconcile_http_port: int = 8081
    warmup_batch: int = 2000
    # Benchmark only: also serve the naive save route (each save written synchronously to
    # MySQL, no Redis, no broker) that `volreg loadtest` compares against. Never in production.
    bench_naive: bool = False
    # The naive route's own MySQL pool: one connection per load connection (wrk's 64).
    bench_naive_pool_size: int = 64
    # Benchmark only: the consumer writes no save history (what the history rows cost, measured
    # by `python -m loadtest.variants`). Never in production: disputes are answered from them.
    bench_no_history: bool = False
    # Hot items: saves and reads count their items per process and publish the counts this
    # often (0 turns the events off); a buffer of at most this many distinct items (more are
    # dropped and counted); the broker keeps at most hot_queue_max such messages.
    hot_flush_s: float = 1.0
    hot_buffer_entries: int = 20_000
    hot_queue_max: int = 10_000
    # A key read this often within a minute is pushed into every API process's local cache
    # for hot_key_ttl_s; the aggregator looks for such keys every hot_push_interval_s.
    hot_key_threshold: int = 600
    hot_key_ttl_s: float = 30.0
    hot_push_interval_s: float = 2.0

    def __post_init__(self) -> None:
        problems = problems_of({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise SettingsError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Raises SettingsError listing every problem: a value of the wrong type or out of
        range, and any ``VOLREG_*`` variable that names no setting (a typo would otherwise
        leave the default in force unnoticed)."""
        env = os.environ if environ is None else environ
        problems = unknown_variables(env, (f.name for f in fields(cls)))
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"VOLREG_{f.name.upper()}")
            if raw is None:
                continue
            kind = type(getattr(_DEFAULTS, f.name))
            try:
                values[f.name] = _parse_bool(raw) if kind is bool else kind(raw)
            except ValueError:
                problems.append(f"VOLREG_{f.name.upper()}={raw!r}: expected {_KIND[kind]}")
        # Ranges too, so that one run lists every problem (a type error keeps the default).
        merged = {f.name: values.get(f.name, getattr(_DEFAULTS, f.name)) for f in fields(cls)}
        problems += problems_of(merged)
        if problems:
            raise SettingsError(problems)
        return cls(**values)  # type: ignore[arg-type]


_DEFAULTS = Settings()
_KIND = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines as scripts/credentials.sh writes them (``#`` comments, no quoting)."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, _, value = line.partition("=")
        values[name.strip()] = value.strip()
    return values


def environment(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment over the env file (``VOLREG_ENV_FILE``, default ``var/volreg.env``
    when it exists): a variable set in the environment wins over the file."""
    env = dict(os.environ if environ is None else environ)
    path = Path(env.get("VOLREG_ENV_FILE", ENV_FILE))
    if not path.is_file():
        return env
    return {**read_env_file(path), **env}


def _parse_bool(raw: str) -> bool:
    # bool("0") is True: spell the accepted words out instead.
    word = raw.strip().lower()
    if word in {"1", "true", "yes", "on"}:
        return True
    if word in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(raw)
