"""Help-request intake in batches: the router's hot path (consume → route → record → dispatch).

One `insert_many` per batch is what lets the router keep up with Kafka on FerretDB, where one insert
costs about as much as a whole batch. A batch subscriber hands the middleware a tuple of records,
which the shared per-record `DeliveryPolicy` middleware does not handle, so intake runs on its own
broker and applies the same delivery rules itself, per record:

- a record that fails validation (or routing) is dead-lettered to `<topic>.dlq` with the error in
  headers, using `DeliveryPolicy.dead_letter`, and the rest of the batch goes on;
- a failure of the store or the broker is retried with backoff, then the batch is nacked (FastStream
  seeks every partition back to the batch's first record) and redelivered; it is idempotent;
- the offsets are committed (`AckPolicy.ACK`) only after every case is stored and its events acked.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog
from faststream import AckPolicy
from faststream.exceptions import NackMessage
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.message import StreamMessage
from pydantic import ValidationError

from common.consumer import TRANSIENT_ERRORS, DeliveryPolicy
from common.kafka import BatchProducer
from contracts.events.hotline import HelpRequested

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from common.app import Runtime
    from services.router.cases import CaseService
    from services.router.settings import Settings

log = structlog.get_logger("router.intake")


def is_transient(exc: BaseException) -> bool:
    """Trouble with the store or the broker (unreachable, busy, refusing a write): it says nothing about
    any one request, so the batch is redelivered later rather than anything dead-lettered."""
    from aiokafka.errors import KafkaError
    from pymongo.errors import PyMongoError

    return isinstance(exc, (*TRANSIENT_ERRORS, KafkaError, PyMongoError))


def make_intake_broker(settings: Settings) -> tuple[KafkaBroker, DeliveryPolicy]:
    """A broker for the batch subscriber: same producer guarantees as `common.kafka.make_broker`."""
    policy = DeliveryPolicy(settings.service_name, max_attempts=settings.consumer_max_attempts,
                            backoff_initial_s=settings.consumer_backoff_initial_s,
                            backoff_max_s=settings.consumer_backoff_max_s)
    broker = KafkaBroker(settings.kafka_bootstrap_servers, client_id=f"{settings.service_name}-intake", acks="all",
                         enable_idempotence=True, request_timeout_ms=10_000, graceful_timeout=10.0,
                         log_level=logging.DEBUG)  # per-batch access logs only at debug level
    policy.bind(broker)
    return broker, policy


async def _dead_letter(policy: DeliveryPolicy, record: ConsumerRecord, exc: BaseException, attempts: int) -> None:
    try:
        await policy.dead_letter(record, exc, attempts)
    except Exception as dlq_exc:
        # The DLQ is unreachable: redeliver the batch rather than lose the record (ACK would commit it).
        log.error("dead-lettering failed; batch will be redelivered", error=repr(dlq_exc))
        raise NackMessage() from dlq_exc


async def _with_retries(policy: DeliveryPolicy, work: Callable[[], Awaitable[int]]) -> int:
    """Run `work`, retrying with backoff; the last error escapes."""
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


class CaseIdConflict(ValueError):
    """A different request carries a case id the router already dispatched: never dispatched twice."""


async def handle_batch(service: CaseService, policy: DeliveryPolicy, producer: BatchProducer,
                       records: tuple[ConsumerRecord, ...]) -> int:
    """Dispatch a batch of help requests; returns how many new cases. Raises `NackMessage` to redeliver."""
    parsed: list[tuple[ConsumerRecord, HelpRequested]] = []
    for record in records:
        try:
            parsed.append((record, HelpRequested.model_validate_json(record.value or b"")))
        except (ValidationError, ValueError) as exc:
            await _dead_letter(policy, record, exc, 1)
    try:
        outcomes = [await _with_retries(policy, lambda: service.dispatch_requests([r for _, r in parsed],
                                                                                  producer=producer))]
    except Exception as exc:
        if is_transient(exc):
            log.error("store or broker unavailable; batch will be redelivered", error=repr(exc))
            raise NackMessage() from exc
        log.error("batch keeps failing; trying its requests one by one", error=repr(exc), records=len(records))
        # One request that cannot be dispatched must not block the others: find it, dead-letter it.
        outcomes = []
        for record, request in parsed:
            try:
                outcomes.append(await _with_retries(
                    policy, lambda r=request: service.dispatch_requests([r], producer=producer)))
            except Exception as exc:
                if is_transient(exc):
                    raise NackMessage() from exc
                await _dead_letter(policy, record, exc, policy.max_attempts)
    conflicts = {k: v for outcome in outcomes for k, v in outcome.conflicts.items()}
    for record, request in parsed:
        if (reason := conflicts.get(str(request.event_id))) is not None:
            await _dead_letter(policy, record, CaseIdConflict(reason), 1)
    return sum(outcome.created for outcome in outcomes)


async def raw_bodies(message: StreamMessage[Any]) -> Any:
    """The batch's record values as they are: `handle_batch` validates each record itself (and dead-letters
    the bad ones), so FastStream's own per-record JSON decoding would be wasted work."""
    return message.body


async def run_intake(runtime: Runtime) -> None:
    """Background loop: `intake_consumers` batch subscribers in the router's group, each on its own broker and
    producer, for the life of the service. Each owns whole partitions, so one case's requests stay in order,
    and one consumer's store write overlaps another's publishing."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    await asyncio.gather(*(_run_consumer(runtime, n) for n in range(settings.intake_consumers)))


async def _run_consumer(runtime: Runtime, n: int) -> None:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    service: CaseService = runtime.store
    broker, policy = make_intake_broker(settings)
    producer = BatchProducer(settings.kafka_bootstrap_servers, client_id=f"{settings.service_name}-dispatch-{n}")

    @broker.subscriber(settings.help_requested_topic, group_id=settings.consumer_group,
                       auto_offset_reset=settings.intake_offset_reset,
                       ack_policy=AckPolicy.ACK, batch=True, max_records=settings.intake_batch_size,
                       batch_timeout_ms=settings.intake_batch_timeout_ms, decoder=raw_bodies)
    async def on_help_requests(_: list[bytes], message: KafkaMessage) -> None:
        raw = message.raw_message
        records = raw if isinstance(raw, tuple) else (raw,)
        created = await handle_batch(service, policy, producer, records)
        log.debug("help requests dispatched", records=len(records), new_cases=created)

    try:
        await runtime.kafka_connected.wait()
        while True:
            try:
                await producer.start()
                await broker.start()
                break
            except Exception as exc:  # noqa: BLE001 - Kafka not reachable yet; the service stays up
                log.warning("intake broker not connected yet", error=repr(exc))
                await broker.stop()
                await producer.stop()
                await asyncio.sleep(2)
        await asyncio.Event().wait()
    finally:
        await broker.stop()
        await producer.stop()
