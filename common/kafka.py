"""Broker factory and the one way events are published (by contract, keyed by case id)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pydantic_core
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner, murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from common.consumer import DeliveryPolicy
from common.kafka_recovery import (
    current_producer,
    install_reconnect_backoff,
    producer_state_lost,
    renew_broker_producer,
    replace_producer,
)

if TYPE_CHECKING:
    from common.settings import ServiceSettings
    from contracts.events import Event

_DEFAULT_PARTITIONER = DefaultPartitioner()

# Subscribers commit only after the handler returned (never ACK_FIRST, which is at-most-once).
SUBSCRIBER_ACK_POLICY = AckPolicy.ACK


def make_broker(settings: ServiceSettings) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and is idempotent, with the delivery policy."""
    install_reconnect_backoff()
    policy = DeliveryPolicy(
        settings.service_name,
        max_attempts=settings.consumer_max_attempts,
        backoff_initial_s=settings.consumer_backoff_initial_s,
        backoff_max_s=settings.consumer_backoff_max_s,
    )
    broker = KafkaBroker(
        settings.kafka_bootstrap_servers,
        client_id=settings.service_name,
        acks="all",
        enable_idempotence=True,
        ack_policy=SUBSCRIBER_ACK_POLICY,
        middlewares=[policy],
        request_timeout_ms=10_000,
        graceful_timeout=10.0,
    )
    policy.bind(broker)
    return broker


def event_headers(event: Event) -> dict[str, str]:
    return _headers(getattr(event, "type", type(event).__name__), event.event_id, event.case_id, event.schema_version)


def _headers(event_type: str, event_id: Any, case_id: str, schema_version: Any) -> dict[str, str]:
    return {
        "event-type": str(event_type),
        "event-id": str(event_id),
        "case-id": str(case_id),
        "schema-version": str(schema_version),
    }


def event_record(body: Mapping[str, Any]) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """An event already in its JSON form (`model_dump(mode="json")`, as outboxes keep it) as the Kafka record
    `publish_event` would send: key (case id), JSON value, and the same headers. For hot paths that publish
    straight through an aiokafka producer; the body came from a validated model, so it is not re-validated."""
    event_id = str(body["event_id"])
    headers = {
        **_headers(body["type"], event_id, body["case_id"], body["schema_version"]),
        "content-type": "application/json",
        "correlation_id": str(body.get("correlation_id") or event_id),
    }
    return (
        str(body["case_id"]).encode(),
        pydantic_core.to_json(body),
        [(name, value.encode()) for name, value in headers.items()],
    )


class KeyHashPartitioner:
    """aiokafka's default partitioner (Kafka's murmur2 of the key, so the same partitions as the Java client)
    with the hash remembered per key: one case's records go to several topics, and aiokafka's murmur2 is
    pure Python. Records without a key are spread at random, as by the default."""

    def __init__(self, max_keys: int = 65536) -> None:
        self._hashes: dict[bytes, int] = {}
        self._max_keys = max_keys

    def __call__(self, key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
        if key is None:
            partition: int = _DEFAULT_PARTITIONER(key, all_partitions, available)
            return partition
        hashed = self._hashes.get(key)
        if hashed is None:
            if len(self._hashes) >= self._max_keys:
                self._hashes.clear()
            hashed = self._hashes[key] = murmur2(key) & 0x7FFFFFFF
        return all_partitions[hashed % len(all_partitions)]


async def publish_event(broker: KafkaBroker, event: Event, *, topic: str | None = None) -> None:
    """Publish an event on its contract's topic (or `topic`), keyed by case id; returns once acknowledged."""
    await publish(
        broker,
        event,
        topic=topic or event.TOPIC,
        key=event.key,
        headers=event_headers(event),
        correlation_id=event.correlation_id or str(event.event_id),
    )


async def publish_events(
    broker: KafkaBroker, events: Sequence[tuple[Event, str]], *, timeout: float
) -> tuple[int, BaseException | None]:
    """Publish `(event, topic)` pairs in their order without waiting for each acknowledgement in turn (one
    producer keeps the order per partition), then wait at most `timeout` seconds for all of them. Returns how
    many, from the first, Kafka acknowledged, and the first failure if there was one: a relay removes the
    acknowledged ones and sends the rest again, in order."""
    producer = current_producer(broker)
    futures: list[asyncio.Future[Any]] = []
    error: BaseException | None = None
    try:
        for event, topic in events:
            pending = await broker.publish(
                event,
                topic=topic,
                key=event.key,
                headers=event_headers(event),
                correlation_id=event.correlation_id or str(event.event_id),
                no_confirm=True,
            )
            if not asyncio.isfuture(pending):  # a test broker has delivered it already
                pending = asyncio.get_running_loop().create_future()
                pending.set_result(None)
            futures.append(pending)
    except Exception as exc:  # noqa: BLE001 - what was queued before it still counts
        error = exc
    done = 0
    try:
        results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), timeout)
    except TimeoutError as exc:
        results, error = [], error or exc
    for result in results:
        if isinstance(result, BaseException):
            error = result
            break
        done += 1
    if error is not None and producer is not None and producer_state_lost(error, producer):
        await renew_broker_producer(broker, producer, error)
    return done, error


async def publish(broker: KafkaBroker, body: Any, **options: Any) -> None:
    """The one way anything is sent through a service's broker (`broker.publish`'s options). A send that
    fails because the producer's idempotent session broke (a broker restart) renews the producer before the
    error reaches the caller, whose retry (outbox relay, redelivery) then goes through the new one."""
    producer = current_producer(broker)
    try:
        await broker.publish(body, **options)
    except Exception as exc:
        if producer is not None and producer_state_lost(exc, producer):
            await renew_broker_producer(broker, producer, exc)
        raise


Record = tuple[str, bytes, bytes, list[tuple[str, bytes]]]  # topic, key, value, headers


class BatchProducer:
    """A producer for hot paths that publish many keyed records at once, with the guarantees of every
    producer here (acks from all in-sync replicas, idempotent). Records are appended to one batch per
    topic partition, in the order given (so one key's records keep their order), and each batch has one
    delivery future: aiokafka's per-record `send` is most of the producer's cost on such a path."""

    def __init__(self, bootstrap_servers: str, *, client_id: str, max_batch_size: int = 512 * 1024) -> None:
        install_reconnect_backoff()
        self.partitioner = KeyHashPartitioner()
        self._options = dict(
            bootstrap_servers=bootstrap_servers,
            acks="all",
            enable_idempotence=True,
            max_batch_size=max_batch_size,
            partitioner=self.partitioner,
            client_id=client_id,
        )
        self.producer = AIOKafkaProducer(**self._options)
        self._renewing = asyncio.Lock()

    async def start(self) -> None:
        await self.producer.start()

    async def stop(self) -> None:
        await self.producer.stop()

    async def deliver(self, records: Iterable[Record], *, timeout: float) -> None:
        """Send `records` and wait (at most `timeout` seconds) until every one is acknowledged. A failure
        because the producer's session broke (a broker restart) renews the producer, then raises: the caller
        sends again through the new one."""
        producer = self.producer
        try:
            futures = await self.send(records)
            await asyncio.wait_for(asyncio.gather(*futures), timeout=timeout)
        except Exception as exc:
            if producer_state_lost(exc, producer):
                await self.renew(producer, exc)
            raise

    async def renew(self, failed: AIOKafkaProducer, reason: BaseException) -> None:
        """Replace the producer `failed` with a new idempotent session, once however many sends failed on it."""

        def install(fresh: AIOKafkaProducer) -> None:
            self.producer = fresh

        await replace_producer(
            self._renewing,
            failed,
            reason,
            current=lambda: self.producer,
            make=lambda: AIOKafkaProducer(**self._options),
            install=install,
        )

    async def send(self, records: Iterable[Record]) -> list[asyncio.Future[Any]]:
        """Queue `records`; await the returned futures for the acknowledgements."""
        producer = self.producer
        partitions: dict[str, list[int]] = {}
        batches: dict[tuple[str, int], BatchBuilder] = {}
        futures: list[asyncio.Future[Any]] = []
        for topic, key, value, headers in records:
            if (known := partitions.get(topic)) is None:
                known = partitions[topic] = sorted(await producer.partitions_for(topic))
            partition = self.partitioner(key, known, known)
            batch = batches.get((topic, partition))
            if batch is None:
                batch = batches[(topic, partition)] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:  # full: send it
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[(topic, partition)] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    raise ValueError(f"a record for {topic} is larger than the producer's batch size")
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
