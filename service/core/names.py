"""Every name that crosses a process boundary: Redis keys, queues and exchanges, metrics."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.records import FormKey
from service.core.ids import shard_of
from service.core.settings import Settings


@dataclass(frozen=True, slots=True)
class Names:
    key_prefix: str
    queue_prefix: str
    shards: int
    queues: int

    # --- Redis. All keys of one candidate share the hash tag of its shard (one cluster slot).
    def tag(self, candidate_id: str) -> str:
        return self.shard_tag(shard_of(candidate_id, self.shards))

    def shard_tag(self, shard: int) -> str:
        return f"{{{self.key_prefix}:{shard:03d}}}"

    def form_key(self, key: FormKey) -> str:
        """Hash with the form's version, metadata and first part; parts 1.. are ``<key>:p<i>``."""
        return f"{self.tag(key.candidate_id)}:form:{key.candidate_id}:{key.batch}"

    def idempotency_key(self, key: FormKey, idem: str) -> str:
        """An Idempotency-Key is scoped to one form (candidate and batch)."""
        return f"{self.tag(key.candidate_id)}:idem:{key.candidate_id}:{key.batch}:{idem}"

    def save_counter_key(self, candidate_id: str) -> str:
        """Saves of one candidate in the current window (stage.lua; the candidate's slot)."""
        return f"{self.tag(candidate_id)}:saves:{candidate_id}"

    def live_idempotency_key(self, candidate_id: str) -> str:
        """Sorted set of a candidate's live Idempotency-Key keys, scored by their expiry."""
        return f"{self.tag(candidate_id)}:idem-live:{candidate_id}"

    def token_generation_key(self, staff: bool, subject: str) -> str:
        """Redis copy of an account's token generation (MySQL holds it durably)."""
        if staff:
            return f"{{{self.key_prefix}:staff}}:token-gen:{subject}"
        return f"{self.tag(subject)}:token-gen:{subject}"

    def login_keys(self, client: str, account: str) -> list[str]:
        """Login attempts of one client address: on this account, and on all accounts. Both
        carry the client's hash tag, so login.lua touches one slot."""
        tag = f"{{{self.key_prefix}:login:{client}}}"
        return [f"{tag}:account:{account}", f"{tag}:all"]

    def login_global_key(self) -> str:
        """Login attempts of the whole service in the current window (login_global.lua)."""
        return f"{{{self.key_prefix}:login-global}}"

    def exam_key(self, candidate_id: str) -> str:
        return f"{self.tag(candidate_id)}:exam:{candidate_id}"

    def changes_key(self, shard: int) -> str:
        """Sorted set of a shard's form keys scored by updated_us, written by commit.lua: the
        change index of incremental reconciliation (same hash tag, so same slot)."""
        return f"{self.shard_tag(shard)}:changed"

    def form_key_of_member(self, member: str) -> FormKey:
        """The form behind a change-index member (a form key)."""
        _, _, rest = member.partition(":form:")
        candidate_id, _, batch = rest.partition(":")
        return FormKey(candidate_id, batch)

    @property
    def reconcile_lock(self) -> str:
        return f"{{{self.key_prefix}:reconcile}}:lock"

    def catalogue_key(self, key: str) -> str:
        """Redis copy of one catalogue entry (``institutions``, ``institution:10001``, ...)."""
        return f"{{{self.key_prefix}:cat}}:{key}"

    # --- RabbitMQ. One quorum queue per shard group, a direct exchange routes by group index.
    def queue_index(self, candidate_id: str) -> int:
        return shard_of(candidate_id, self.shards) % self.queues

    @property
    def exchange(self) -> str:
        return f"{self.queue_prefix}.forms"

    def queue(self, index: int) -> str:
        return f"{self.queue_prefix}.forms.q{index}"

    @property
    def all_queues(self) -> list[str]:
        return [self.queue(i) for i in range(self.queues)]

    @property
    def dead_letter_exchange(self) -> str:
        return f"{self.queue_prefix}.forms.dlx"

    @property
    def dead_letter_queue(self) -> str:
        return f"{self.queue_prefix}.forms.dead"

    @property
    def catalogue_exchange(self) -> str:
        """Fanout of catalogue invalidations; every API process binds an exclusive queue."""
        return f"{self.queue_prefix}.catalogue"

    # --- Hot items: events on an exchange and queue of their own (never the form queues),
    # hot keys pushed to every API process over a fanout; Redis buckets share one slot.
    @property
    def hot_exchange(self) -> str:
        return f"{self.queue_prefix}.hot"

    @property
    def hot_queue(self) -> str:
        return f"{self.queue_prefix}.hot.events"

    @property
    def hot_keys_exchange(self) -> str:
        return f"{self.queue_prefix}.hotkeys"

    def hot_key(self, *parts: str | int) -> str:
        """``{vr:hot}:m:<minute>:<batch>:<kind>`` and the like (one cluster slot)."""
        return ":".join([f"{{{self.key_prefix}:hot}}", *map(str, parts)])


# --- AMQP headers besides the message format's: the API request that published a save.
HEADER_REQUEST_ID = "x-request-id"

# --- Prometheus metric names.
METRIC_REQUESTS = "volreg_http_requests_total"
METRIC_LATENCY = "volreg_http_request_seconds"
METRIC_SAVES = "volreg_saves_total"
METRIC_SAVE_STAGE = "volreg_save_stage_seconds"
METRIC_CONSUMED = "volreg_consumed_messages_total"
METRIC_DEAD_LETTERED = "volreg_dead_lettered_total"
METRIC_CONSUME_BATCH = "volreg_consume_batch_rows"
METRIC_MYSQL_COMMITS = "volreg_mysql_form_commits_total"
METRIC_GROUP_RECORDS = "volreg_publish_batch_records"
METRIC_GROUP_FLUSHES = "volreg_publish_flushes_total"
METRIC_GROUP_WAIT = "volreg_publish_group_wait_seconds"
METRIC_CONFIRM = "volreg_publish_confirm_seconds"
METRIC_RECONCILE_RUNS = "volreg_reconcile_runs_total"
METRIC_RECONCILE_FORMS = "volreg_reconcile_forms_total"
METRIC_RECONCILE_LAST = "volreg_reconcile_last_run"
METRIC_RECONCILE_SECONDS = "volreg_reconcile_run_seconds"
METRIC_HOT_EVENTS = "volreg_hot_events_total"
METRIC_HOT_APPLIED = "volreg_hot_messages_applied_total"
METRIC_HOT_PUSHED = "volreg_hot_keys_pushed_total"
METRIC_DEPENDENCY_UP = "volreg_dependency_up"
METRIC_QUEUE_MESSAGES = "volreg_queue_messages"
METRIC_DEAD_LETTER_MESSAGES = "volreg_dead_letter_messages"
METRIC_CONSUMER_LAG = "volreg_consumer_lag_seconds"
METRIC_CONSUME_DELAY = "volreg_consume_delay_seconds"
METRIC_CONSUME_UPSERT = "volreg_consume_upsert_seconds"
METRIC_OLDEST_UNACKED = "volreg_consumer_oldest_unacked_seconds"
METRIC_LOGIN_FAILURES = "volreg_login_failures_total"
METRIC_CACHE_HITS = "volreg_cache_hits_total"
METRIC_CACHE_MISSES = "volreg_cache_misses_total"


def names_of(settings: Settings) -> Names:
    return Names(settings.key_prefix, settings.queue_prefix, settings.shards, settings.queues)
