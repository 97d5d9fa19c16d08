"""RocketMQ 5 adapter (``VOLREG_BROKER=rocketmq``): the same publisher and consumer ports as
the RabbitMQ adapter, over the official gRPC client (``rocketmq-python-client``).

- Routing: one topic per shard group, ``<queue prefix>_forms_<index>`` (RocketMQ topic names
  allow no dots), of message type NORMAL (set explicitly: a gRPC producer must match it);
  one consumer group
  ``<queue prefix>_consumers``; dead letters in ``<queue prefix>_dead`` with the reason.
- A publish returns only on a SendReceipt; the broker runs with ``flushDiskType=SYNC_FLUSH``,
  so a receipt means the message was fsynced (scripts/rocketmq.sh).
- The client runs its own asyncio loop on a thread and hands out concurrent futures: they are
  bridged with ``asyncio.wrap_future``. Clients are created in ``start()``, inside the process
  that uses them (after any fork or spawn of ``volreg serve --workers``).
- ``Producer.startup()`` succeeds against a dead endpoint, so being connected means a route
  query answered by the proxy for every topic; a monitor repeats that query and saves 503
  at once while it fails, then the same clients carry on (gRPC reconnects by itself).
- Consumers receive with an invisible duration and ack only after the MySQL commit; what is
  not acked in time is delivered again (harmless: upserts are version-guarded).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

from rocketmq import (
    ClientConfiguration,
    Credentials,
    FilterExpression,
    Message,
    Producer,
    SimpleConsumer,
    TransactionChecker,
)
from rocketmq.grpc_protocol import (
    Code,
    EndTransactionRequest,
    QueryRouteRequest,
    TransactionResolution,
    TransactionSource,
)
from rocketmq.v5.model import SendReceipt

from schemas import messages
from schemas.records import FormRecord
from service.core.errors import BrokerUnavailable, PublishUncertain
from service.core.names import Names
from service.core.ports import Inbound
from service.core.settings import Settings
from service.storage import rocket_admin

log = logging.getLogger(__name__)
# The client logs every heartbeat at INFO into ~/logs/rocketmq_python; keep only problems.
logging.getLogger("rocketmq-python-client").setLevel(logging.WARNING)

REASON_PROPERTY = "x-volreg-reason"
_INT_PROPERTIES = ("x-schema", "x-records", "version", "updated_us", "shard")
_MONITOR_S = 0.5
_RECEIVE_BATCH = 32
_RECEIVE_WAIT_S = 2
_RETRY_SOON_S = 1
# Transactional half messages are sent with the client's blocking call, one thread each.
_HALF_SENDERS = 32
T = TypeVar("T")
# Whether a save's Redis commit happened: True, False, or None when nobody can tell yet
# (service.forms.transactions.committed).
Committed = Callable[[FormRecord], Coroutine[Any, Any, bool | None]]


def topic(names: Names, index: int) -> str:
    return f"{names.queue_prefix}_forms_{index}"


def all_topics(names: Names) -> list[str]:
    return [topic(names, i) for i in range(names.queues)]


def dead_topic(names: Names) -> str:
    return f"{names.queue_prefix}_dead"


def consumer_group(names: Names) -> str:
    return f"{names.queue_prefix}_consumers"


def form_message_type(settings: Settings) -> str:
    """A topic takes one message type: transactional saves need TRANSACTION topics."""
    return "TRANSACTION" if settings.rocketmq_transactions else "NORMAL"


async def create_topology(settings: Settings, names: Names) -> None:
    """The topics this prefix needs (idempotent: the broker updates an existing topic)."""
    timeout = settings.broker_timeout_s
    kind = form_message_type(settings)
    for name in all_topics(names):
        await rocket_admin.create_topic(settings.rocketmq_broker_addr, name, kind, timeout)
    await rocket_admin.create_topic(
        settings.rocketmq_broker_addr, dead_topic(names), "NORMAL", timeout
    )


async def delete_topology(settings: Settings, names: Names) -> None:
    """Remove a prefix's topics and consumer group (tests clean up their own)."""
    timeout = settings.broker_timeout_s
    for name in [*all_topics(names), dead_topic(names)]:
        with suppress(rocket_admin.AdminError):
            await rocket_admin.delete_topic(settings.rocketmq_broker_addr, name, timeout)
    with suppress(rocket_admin.AdminError):
        await rocket_admin.delete_group(
            settings.rocketmq_broker_addr, consumer_group(names), timeout
        )


def properties_of(headers: Mapping[str, Any]) -> dict[str, str]:
    """Message properties are strings; the numeric headers are parsed back on receipt."""
    return {k: str(v) for k, v in headers.items()}


def headers_of(properties: Mapping[str, str]) -> dict[str, Any]:
    headers: dict[str, Any] = dict(properties)
    for name in _INT_PROPERTIES:
        value = headers.get(name)
        if isinstance(value, str) and value.isdigit():
            headers[name] = int(value)
    return headers


@dataclass(slots=True)
class _Clients:
    producer: Producer
    consumer: SimpleConsumer | None = None


class RocketBroker:
    """Publisher and consumer on RocketMQ 5 through the proxy's gRPC endpoint.

    With ``rocketmq_transactions`` saves go as half messages (``publish_half``) and
    ``committed`` answers the broker's check-backs; a broker without it (the consumer's)
    publishes dead letters only and registers no form topic, so the proxy never asks it."""

    def __init__(
        self, settings: Settings, names: Names, committed: Committed | None = None
    ) -> None:
        self._settings = settings
        self._names = names
        self._topics = all_topics(names)
        self._committed = committed
        self._transactions = settings.rocketmq_transactions
        # The proxy sends a check-back to a producer that named the topic (its producer group).
        self._sends_to = (
            [dead_topic(names)] if self._transactions and committed is None else self._topics
        )
        self._half_senders: ThreadPoolExecutor | None = None
        self._clients: _Clients | None = None
        self._up = False
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._receivers: list[asyncio.Task[None]] = []
        self._handler: Callable[[Inbound], Awaitable[None]] | None = None
        # Unacked messages held at once. Unlike RabbitMQ's prefetch, each one expires after the
        # invisible duration, so hold no more than the writer gets through well within it.
        self._in_flight = asyncio.Semaphore(
            max(1, min(settings.consume_prefetch, 2 * settings.consume_batch))
        )
        self._acks: set[asyncio.Future[Any]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="rocketmq-connect")

    async def wait_connected(self, timeout: float) -> None:
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    async def close(self) -> None:
        # Let the long polls in flight end (cancelling one makes the client log errors after
        # its shutdown); what they still bring is not handed on and comes back later.
        self._closing = True
        if self._acks:
            await asyncio.wait(self._acks, timeout=self._settings.broker_timeout_s)
        if self._receivers:
            await asyncio.wait(self._receivers, timeout=_RECEIVE_WAIT_S + 1)
        for task in [*self._receivers, *([self._task] if self._task else [])]:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task
        clients, self._clients = self._clients, None
        if clients is not None:
            await asyncio.to_thread(_shutdown, clients)
        if self._half_senders is not None:
            self._half_senders.shutdown(wait=False, cancel_futures=True)

    def _new_producer(self) -> Producer:
        if not self._transactions or self._committed is None:
            return Producer(self._config(), self._sends_to)
        assert self._loop is not None
        self._half_senders = ThreadPoolExecutor(_HALF_SENDERS, thread_name_prefix="rocketmq-half")
        checker = _Checker(self._loop, self._committed, self._settings.rocketmq_check_timeout_s)
        return Producer(self._config(), self._sends_to, checker=checker)

    def _config(self) -> ClientConfiguration:
        timeout = max(1, int(self._settings.broker_timeout_s))
        return ClientConfiguration(
            self._settings.rocketmq_endpoints, Credentials(), request_timeout=timeout
        )

    async def _run(self) -> None:
        """Create the topics and the producer once the broker answers, then watch the route."""
        while self._clients is None:
            try:
                await create_topology(self._settings, self._names)
                producer = self._new_producer()
                await asyncio.to_thread(producer.startup)
                self._clients = _Clients(producer)
            except (rocket_admin.AdminError, Exception) as exc:
                log.warning("rocketmq not reachable yet: %s", exc)
                await asyncio.sleep(_RETRY_SOON_S)
        while True:
            up = await self._route_answers()
            if up != self._up:
                log.log(
                    logging.INFO if up else logging.WARNING,
                    "rocketmq %s",
                    "up" if up else "unreachable",
                )
            if up and not self._up and self._connected.is_set():
                up = await self._renew_consumer()  # not up until it has one
            if up and not self._connected.is_set():
                # Routes the client failed to fetch at startup are fetched on demand, in a
                # blocking call: fetch them here, off the event loop, before the first send.
                producer = self._clients.producer
                for name in self._sends_to:
                    await asyncio.to_thread(producer._retrieve_topic_route_data, name)
            self._up = up
            if up:
                self._connected.set()
            await asyncio.sleep(_MONITOR_S)

    async def _route_answers(self) -> bool:
        """A route query answered by the proxy for every form topic (proves a real route; an
        open port or a started client does not)."""
        clients = self._clients
        if clients is None:
            return False
        producer = clients.producer
        try:
            for name in self._topics:
                req = QueryRouteRequest()
                req.topic.name = name
                req.endpoints.CopyFrom(producer.client_configuration.rpc_endpoints.endpoints)
                future = producer.rpc_client.query_topic_route_async(
                    producer.client_configuration.rpc_endpoints,
                    req,
                    metadata=producer.sign(),
                    timeout=_probe_timeout(self._settings),
                )
                res = await self._bridge(future, _probe_timeout(self._settings))
                if res.status.code != Code.OK:
                    return False
        except BrokerUnavailable:
            return False
        return True

    async def _bridge(self, future: Future[T], timeout: float) -> T:
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerUnavailable from exc

    def _producer(self) -> Producer:
        clients = self._clients
        if clients is None or not self._up:
            raise BrokerUnavailable
        return clients.producer

    async def ping(self) -> None:
        self._producer()

    # --- publishing ------------------------------------------------------------------------

    def _form_message(
        self, index: int, headers: Mapping[str, Any], body: bytes, key: str
    ) -> Message:
        message = Message()
        message.topic = topic(self._names, index)
        message.body = body
        message.keys = key
        for name, value in properties_of(headers).items():
            message.add_property(name, value)
        return message

    def _record_message(self, record: FormRecord) -> Message:
        index = self._names.queue_index(record.candidate_id)
        headers, body = messages.encode(record, index)
        return self._form_message(index, headers, body, messages.message_id(record))

    async def publish(self, record: FormRecord) -> None:
        """Returns once the broker answered with a SendReceipt (SYNC_FLUSH: on disk)."""
        await self._send(self._record_message(record))

    async def publish_batch(self, records: Sequence[FormRecord]) -> None:
        """One message (batch format) for ``records``, all of one topic; returns once the
        broker answered with a SendReceipt (SYNC_FLUSH: on disk)."""
        index = self._names.queue_index(records[0].candidate_id)
        headers, body = messages.encode_batch(records)
        await self._send(
            self._form_message(index, headers, body, messages.batch_message_id(records))
        )

    async def _send(self, message: Message) -> None:
        """Send and await the SendReceipt: BrokerUnavailable when the client refused the
        message (nothing sent), PublishUncertain when no receipt came (it may be stored)."""
        try:
            future = self._producer().send_async(message)
        except BrokerUnavailable:
            raise
        except Exception as exc:  # no route, client stopped, refused message type
            raise BrokerUnavailable from exc
        try:
            await self._bridge(future, self._settings.broker_timeout_s)
        except BrokerUnavailable as exc:
            raise PublishUncertain from exc.__cause__

    async def publish_half(self, record: FormRecord) -> HalfMessage:
        """Send ``record`` as a half message: stored (SYNC_FLUSH) but kept from consumers
        until committed. Raises BrokerUnavailable when it was not stored, or may have been
        stored without a receipt: such a half message is never committed by this process,
        and the check-back rolls it back, since the save's Redis commit never happens."""
        producer = self._producer()
        if self._half_senders is None:
            raise BrokerUnavailable("this process sends no transactional messages")
        message = self._record_message(record)
        try:
            transaction = producer.begin_transaction()
            sending = asyncio.get_running_loop().run_in_executor(
                self._half_senders, producer.send, message, transaction
            )
            async with asyncio.timeout(self._settings.broker_timeout_s):
                receipt = await sending
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise BrokerUnavailable from exc
        return HalfMessage(self, message, receipt)

    async def end_transaction(
        self, message: Message, receipt: SendReceipt, resolution: TransactionResolution
    ) -> None:
        """Commit or roll back a half message; BrokerUnavailable without the broker's OK."""
        producer = self._producer()
        request = EndTransactionRequest()
        request.topic.name = message.topic
        request.topic.resource_namespace = producer.client_configuration.namespace
        request.message_id = receipt.message_id
        request.transaction_id = receipt.transaction_id
        request.resolution = resolution
        request.source = TransactionSource.SOURCE_CLIENT
        try:
            future = producer.rpc_client.end_transaction_async(
                receipt.message_queue.endpoints,
                request,
                metadata=producer.sign(),
                timeout=self._settings.broker_timeout_s,
            )
        except Exception as exc:
            raise BrokerUnavailable from exc
        answer = await self._bridge(future, self._settings.broker_timeout_s)
        if answer.status.code != Code.OK:
            raise BrokerUnavailable(f"end transaction refused: {answer.status.message}")

    async def dead_letter(self, message: Message, reason: str) -> None:
        """Park a message that can never be applied, with the reason, then ack the original."""
        await self._park(message, message.properties or {}, bytes(message.body or b""), reason)
        await self.ack(message)

    async def park_part(
        self, message: Message, headers: Mapping[str, Any], body: bytes, reason: str
    ) -> None:
        """Park one record of a batch message as a message of its own, with the reason; the
        original is acked by the consumer once all its records are settled."""
        await self._park(message, properties_of(headers), body, reason)

    async def _park(
        self, message: Message, properties: Mapping[str, str], body: bytes, reason: str
    ) -> None:
        parked = Message()
        parked.topic = dead_topic(self._names)
        parked.body = body
        for name, value in properties.items():
            parked.add_property(name, value)
        parked.add_property(REASON_PROPERTY, reason[:1000])
        parked.add_property("x-volreg-topic", message.topic or "")
        await self._send(parked)

    async def dead_letters(self, count: int, timeout: float) -> list[dict[str, Any]]:
        """Read (and ack) up to ``count`` parked messages' properties, waiting at most
        ``timeout``: operators see each one's reason in ``x-volreg-reason``."""
        reader = SimpleConsumer(
            self._config(),
            f"{self._names.queue_prefix}_dead_readers",
            {dead_topic(self._names): FilterExpression()},
            await_duration=_RECEIVE_WAIT_S,
        )
        await asyncio.to_thread(reader.startup)
        found: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                while len(found) < count:
                    wanted = count - len(found)
                    try:
                        received = await asyncio.wrap_future(
                            reader.receive_async(wanted, self._settings.rocketmq_invisible_s)
                        )
                    except Exception as exc:  # e.g. the proxy has no settings for it yet
                        log.debug("dead-letter read failed, trying again: %s", exc)
                        await asyncio.sleep(_RETRY_SOON_S / 4)
                        continue
                    for message in received or []:
                        found.append(headers_of(message.properties or {}))
                        await asyncio.wrap_future(reader._ack_async(message))
        except TimeoutError:
            pass
        finally:
            await asyncio.to_thread(reader.shutdown)
        return found

    # --- consuming -------------------------------------------------------------------------

    async def consume(self, handler: Callable[[Inbound], Awaitable[None]]) -> None:
        """Receive from every form topic and hand each message to ``handler``; at most
        ``consume_prefetch`` are held unacked at a time."""
        clients = self._clients
        if clients is None:
            raise BrokerUnavailable
        if clients.consumer is None:
            clients.consumer = await self._start_consumer()
        self._handler = handler
        # One long poll per topic in flight (the consumer picks topics in turn).
        self._receivers = [
            asyncio.create_task(self._receive_forever(), name=f"rocketmq-receive-{i}")
            for i in range(len(self._topics))
        ]

    async def _start_consumer(self) -> SimpleConsumer:
        subscription = {name: FilterExpression() for name in self._topics}
        consumer = SimpleConsumer(
            self._config(),
            consumer_group(self._names),
            subscription,
            await_duration=_RECEIVE_WAIT_S,
        )
        try:
            await asyncio.to_thread(consumer.startup)
        except Exception as exc:
            raise BrokerUnavailable from exc
        return consumer

    async def _renew_consumer(self) -> bool:
        """After the broker was unreachable: a new SimpleConsumer. The old one's receives keep
        failing once the proxy restarted (it no longer knows the client's settings); what the
        old one held unacked is delivered again after its invisible duration."""
        clients = self._clients
        if clients is None or clients.consumer is None:
            return True
        try:
            fresh = await self._start_consumer()
        except BrokerUnavailable:
            log.warning("rocketmq back, but a new consumer did not start; trying again")
            return False
        old, clients.consumer = clients.consumer, fresh
        log.info("rocketmq back: consuming through a new client")
        with suppress(Exception):
            await asyncio.to_thread(old.shutdown)
        return True

    async def _receive_forever(self) -> None:
        limit = self._settings.delivery_limit
        while not self._closing:
            consumer = self._clients.consumer if self._clients else None
            if consumer is None:
                return
            try:
                received = await self._bridge(
                    consumer.receive_async(_RECEIVE_BATCH, self._settings.rocketmq_invisible_s),
                    self._settings.broker_timeout_s + _RECEIVE_WAIT_S,
                )
            except BrokerUnavailable as exc:
                log.debug("receive failed (broker down or nothing to receive): %s", exc.__cause__)
                await asyncio.sleep(_RETRY_SOON_S / 4)
                continue
            for message in received or []:
                if self._closing:
                    return
                await self._in_flight.acquire()
                delivery = _Delivery(self, message)
                attempts = int(message.delivery_attempt or 1)
                if limit and attempts > limit:
                    # A message consumers keep failing on (RabbitMQ's x-delivery-limit).
                    await _park(delivery, f"delivered {attempts} times without being applied")
                    continue
                assert self._handler is not None
                await self._handler(delivery)

    # SimpleConsumer.ack_async and change_invisible_duration_async drop the future they make
    # (client 5.1.2); the methods underneath return it.
    async def ack(self, message: Message) -> None:
        """Send the ack without waiting for the broker's answer: a lost ack only means the
        message comes back after its invisible duration (harmless), while waiting for each
        answer in turn would cap a consumer at one round trip per message."""
        consumer = self._clients.consumer if self._clients else None
        if consumer is None:
            raise BrokerUnavailable
        try:
            pending = asyncio.wrap_future(consumer._ack_async(message))
        except Exception as exc:
            raise BrokerUnavailable from exc
        self._acks.add(pending)
        pending.add_done_callback(self._ack_done)

    def _ack_done(self, pending: asyncio.Future[Any]) -> None:
        self._acks.discard(pending)
        if not pending.cancelled() and pending.exception() is not None:
            log.warning("ack refused; the message will be delivered again: %s", pending.exception())

    async def retry_soon(self, message: Message) -> None:
        consumer = self._clients.consumer if self._clients else None
        if consumer is None:
            raise BrokerUnavailable
        await self._bridge(
            consumer._change_invisible_duration_async(message, _RETRY_SOON_S),
            self._settings.broker_timeout_s,
        )

    def release(self) -> None:
        """One delivery settled (acked, parked or handed back): room for the next."""
        self._in_flight.release()


@dataclass(frozen=True, slots=True)
class HalfMessage:
    """A stored half message of one save, invisible to consumers until committed."""

    broker: RocketBroker
    message: Message
    receipt: SendReceipt

    async def commit(self) -> None:
        """Let consumers have it. PublishUncertain when the broker's answer did not come: the
        check-back commits it later if the save's Redis commit happened."""
        try:
            await self.broker.end_transaction(
                self.message, self.receipt, TransactionResolution.COMMIT
            )
        except BrokerUnavailable as exc:
            raise PublishUncertain from exc

    async def rollback(self) -> None:
        """Discard it. Without the broker's answer the check-back decides, as it would."""
        try:
            await self.broker.end_transaction(
                self.message, self.receipt, TransactionResolution.ROLLBACK
            )
        except BrokerUnavailable as exc:
            log.warning("rollback of %s unanswered; the check-back settles it", self.message.keys)
            log.debug("rollback failure", exc_info=exc)


class _Checker(TransactionChecker):  # type: ignore[misc]  # the client ships no type hints
    """The broker's check-back about a half message left undecided (the API process died
    between the send and the commit, or the commit's answer was lost): COMMIT when the save's
    Redis commit happened, ROLLBACK when it did not. Runs on the client's check thread, and
    asks ``committed`` on the service's event loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, committed: Committed, timeout_s: float
    ) -> None:
        self._loop = loop
        self._committed = committed
        self._timeout_s = timeout_s

    def check(self, message: Message) -> TransactionResolution:
        try:
            record = messages.decode(
                headers_of(message.properties or {}), bytes(message.body or b"")
            )
        except messages.MessageFormatError:
            log.warning("check-back about a message not ours (%s): rolled back", message.keys)
            return TransactionResolution.ROLLBACK
        asking = asyncio.run_coroutine_threadsafe(self._committed(record), self._loop)
        try:
            outcome = asking.result(self._timeout_s)
        except Exception as exc:
            asking.cancel()
            outcome = None
            log.warning("check-back about %s: no answer (%r)", messages.message_id(record), exc)
        if outcome is None:
            # No answer to the broker: it asks again at its next check interval.
            raise BrokerUnavailable(f"cannot tell yet whether {record.key} was committed")
        log.info(
            "check-back: %s %s", messages.message_id(record), "commit" if outcome else "roll back"
        )
        return TransactionResolution.COMMIT if outcome else TransactionResolution.ROLLBACK


async def _park(delivery: _Delivery, reason: str) -> None:
    try:
        await delivery.dead_letter(reason)
    except BrokerUnavailable:
        log.warning("broker gone while dead-lettering; the message will be delivered again")


def _probe_timeout(settings: Settings) -> float:
    """A route query is answered from the broker's memory: slower than this means down."""
    return min(2.0, settings.broker_timeout_s)


def _shutdown(clients: _Clients) -> None:
    for client in (clients.consumer, clients.producer):
        if client is not None:
            with suppress(Exception):
                client.shutdown()


@dataclass(slots=True)
class _Delivery:
    broker: RocketBroker
    message: Message
    settled: bool = False

    @property
    def headers(self) -> Mapping[str, Any]:
        return headers_of(self.message.properties or {})

    @property
    def body(self) -> bytes:
        return bytes(self.message.body or b"")

    def _settle(self) -> bool:
        """True the first time: the delivery's place among the unacked is given back then,
        whether or not the broker hears about it (an unacked message comes back anyway)."""
        first, self.settled = not self.settled, True
        if first:
            self.broker.release()
        return first

    async def ack(self) -> None:
        if self._settle():
            await self.broker.ack(self.message)

    async def dead_letter(self, reason: str) -> None:
        if self._settle():
            await self.broker.dead_letter(self.message, reason)

    async def requeue(self) -> None:
        if self._settle():
            await self.broker.retry_soon(self.message)

    async def dead_letter_part(self, headers: Mapping[str, Any], body: bytes, reason: str) -> None:
        await self.broker.park_part(self.message, headers, body, reason)


@asynccontextmanager
async def open_broker(
    settings: Settings, names: Names, committed: Committed | None = None
) -> AsyncIterator[RocketBroker]:
    broker = RocketBroker(settings, names, committed)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()
