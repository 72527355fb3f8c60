"""Batch consumers: the one way a service consumes a topic a batch of records at a time.

A hot path that does a store round trip per record cannot keep up with a surge on a store where every
lookup scans a collection; one that does a bounded number of round trips per batch can. A batch subscriber
hands the middleware a tuple of records, which the per-record `DeliveryPolicy` middleware does not handle,
so a batch consumer runs on a broker of its own and applies the same delivery rules itself:

- the batch handler returns the records it could not handle for reasons of their own (they fail
  validation, they break a rule); each is dead-lettered to `<topic>.dlq` with its error, and the rest of
  the batch goes on;
- a failure of the whole batch is retried with backoff; a transient one (store or broker unreachable) then
  nacks the batch (FastStream seeks every partition back to its first record) so it is redelivered; any
  other is narrowed down by handling the records one by one, dead-lettering the ones that still fail;
- the offsets are committed (`AckPolicy.ACK`) only after the handler's effects are durable.

A consumer may linger (`linger_ms`): the broker then holds each fetch until that long has passed or
`LINGER_MIN_BYTES` have come (Kafka's `fetch.max.wait.ms` and `fetch.min.bytes`), so while records come
slowly a batch gathers what came during the linger instead of the one or two records that came during
the last batch's handling, and a consumer that is behind takes full batches at once as before.

Handlers must be idempotent: a redelivered batch is handled again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import structlog
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from common.consumer import TRANSIENT_ERRORS, DeliveryPolicy
from common.kafka_recovery import install_reconnect_backoff

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from common.app import Runtime
    from common.settings import ServiceSettings

log = structlog.get_logger("batches")
T = TypeVar("T")

Rejected = list[tuple["ConsumerRecord", BaseException]]  # records to dead-letter, each with its error
BatchHandler = Callable[[Sequence["ConsumerRecord"]], Awaitable[Rejected]]
LINGER_MIN_BYTES = 256 * 1024  # what ends a lingering fetch early (module docstring)
OffsetReset = Literal["latest", "earliest", "none"]  # where a consumer without a committed offset starts


def is_transient(exc: BaseException) -> bool:
    """Trouble with the store or the broker (unreachable, busy, refusing a write): it says nothing about
    any one record, so the batch is redelivered later rather than anything dead-lettered."""
    from aiokafka.errors import KafkaError
    from pymongo.errors import PyMongoError

    return isinstance(exc, (*TRANSIENT_ERRORS, KafkaError, PyMongoError))


def make_batch_broker(settings: ServiceSettings, name: str) -> tuple[KafkaBroker, DeliveryPolicy]:
    """A broker for one batch consumer, with the producer guarantees of `common.kafka.make_broker`."""
    install_reconnect_backoff()
    policy = DeliveryPolicy(
        settings.service_name,
        max_attempts=settings.consumer_max_attempts,
        backoff_initial_s=settings.consumer_backoff_initial_s,
        backoff_max_s=settings.consumer_backoff_max_s,
    )
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=f"{settings.service_name}-{name}",
        acks="all",
        enable_idempotence=True,
        request_timeout_ms=10_000,
        graceful_timeout=10.0,
        log_level=logging.DEBUG,  # per-batch access logs only at debug level
        # The handler is handed the batch's records as they came (`raw_records`) and decodes each itself:
        # no argument validation and no context injection per batch (FastStream resolves an injected
        # message in a worker thread, a thread hop for every batch).
        apply_types=False,
    )
    policy.bind(broker)
    return broker, policy


async def dead_letter(policy: DeliveryPolicy, record: ConsumerRecord, exc: BaseException, attempts: int) -> None:
    try:
        await policy.dead_letter(record, exc, attempts)
    except Exception as dlq_exc:
        # The DLQ is unreachable: redeliver the batch rather than lose the record (ACK would commit it).
        log.error("dead-lettering failed; batch will be redelivered", error=repr(dlq_exc))
        raise NackMessage() from dlq_exc


async def with_retries(policy: DeliveryPolicy, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work`, retrying with the policy's backoff; the last error escapes."""
    attempt = 0
    while True:
        attempt += 1
        try:
            return await work()
        except Exception as exc:
            if attempt >= policy.max_attempts:
                raise
            delay = policy.backoff(attempt)
            log.warning("batch failed, retrying", attempt=attempt, delay_s=round(delay, 3), error=repr(exc))
            await asyncio.sleep(delay)


async def handle_with_policy(policy: DeliveryPolicy, handler: BatchHandler, records: Sequence[ConsumerRecord]) -> None:
    """Apply the delivery rules (module docstring) to one batch."""
    failed: Rejected = []  # records that failed every attempt, as opposed to ones the handler rejected
    try:
        rejected = await with_retries(policy, lambda: handler(records))
    except Exception as exc:
        if is_transient(exc):
            log.error("store or broker unavailable; batch will be redelivered", error=repr(exc))
            raise NackMessage() from exc
        log.error("batch keeps failing; handling its records one by one", error=repr(exc), records=len(records))
        rejected = []
        for record in records:
            try:
                rejected += await with_retries(policy, partial(handler, [record]))
            except Exception as one_exc:
                if is_transient(one_exc):
                    raise NackMessage() from one_exc
                failed.append((record, one_exc))
    for record, error in rejected:
        await dead_letter(policy, record, error, 1)
    for record, error in failed:
        await dead_letter(policy, record, error, policy.max_attempts)


async def raw_bodies(message: StreamMessage[Any]) -> Any:
    """The record values as they are: the handler decodes each record itself (and rejects the bad ones), so
    FastStream's own per-record JSON decoding would be wasted work."""
    return message.body


async def raw_records(message: StreamMessage[Any]) -> tuple[ConsumerRecord, ...]:
    """The batch's records themselves (offsets, keys and headers with the values), for a batch handler."""
    raw = message.raw_message
    return raw if isinstance(raw, tuple) else (raw,)


@dataclass(frozen=True)
class BatchConsumer:
    """One batch subscriber of `topics` in `group_id`, for the life of the service (a background loop).

    Without a group (`group_id=None`) every process reads every partition from where the topic stands
    when it starts (`auto_offset_reset`, usually "latest") and commits nothing: for state every process
    keeps in memory, such as what the other processes did."""

    name: str
    topics: tuple[str, ...]
    group_id: str | None
    handler: BatchHandler
    max_records: int = 500
    batch_timeout_ms: int = 50
    linger_ms: int = 0  # module docstring; 0: records are fetched as soon as there are any
    auto_offset_reset: OffsetReset = "earliest"
    # Started (with the broker, as the loop's first step) and stopped with it, e.g. a producer.
    resources: tuple[Any, ...] = ()
    started: asyncio.Event | None = None  # set once the subscriber is running

    async def run(self, runtime: Runtime[Any]) -> None:
        broker, policy = make_batch_broker(runtime.settings, self.name)
        if self.group_id is not None:
            runtime.consumers[self.group_id] = self.topics

        @broker.subscriber(
            *self.topics,
            group_id=self.group_id,
            auto_offset_reset=self.auto_offset_reset,
            ack_policy=AckPolicy.ACK if self.group_id else AckPolicy.MANUAL,
            batch=True,
            max_records=self.max_records,
            batch_timeout_ms=self.batch_timeout_ms,
            decoder=raw_records,
            # Without a linger, Kafka's defaults: a fetch returns as soon as there is a byte.
            fetch_max_wait_ms=self.linger_ms if self.linger_ms > 0 else 500,
            fetch_min_bytes=LINGER_MIN_BYTES if self.linger_ms > 0 else 1,
        )
        async def on_batch(records: Any) -> None:  # `raw_records` gives the tuple
            await handle_with_policy(policy, self.handler, records)

        try:
            await runtime.kafka_connected.wait()
            while True:
                try:
                    for resource in self.resources:
                        await resource.start()
                    await broker.start()
                    break
                except Exception as exc:  # noqa: BLE001 - Kafka not reachable yet; the service stays up
                    log.warning("batch consumer not connected yet", consumer=self.name, error=repr(exc))
                    await broker.stop()
                    for resource in self.resources:
                        await resource.stop()
                    await asyncio.sleep(2)
            if self.started is not None:
                self.started.set()
            await asyncio.Event().wait()
        finally:
            await broker.stop()
            for resource in self.resources:
                await resource.stop()
