"""Broker factory and the one way events are published (by contract, keyed by case id)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream import AckPolicy
from faststream.kafka import KafkaBroker

from common.consumer import DeliveryPolicy

if TYPE_CHECKING:
    from contracts.events import Event

    from common.settings import ServiceSettings

# Subscribers commit only after the handler returned (never ACK_FIRST, which is at-most-once).
SUBSCRIBER_ACK_POLICY = AckPolicy.ACK


def make_broker(settings: ServiceSettings) -> KafkaBroker:
    """A broker whose producer waits for all in-sync replicas and is idempotent, with the delivery policy."""
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
    return {
        "event-type": getattr(event, "type", type(event).__name__),
        "event-id": str(event.event_id),
        "case-id": event.case_id,
        "schema-version": str(event.schema_version),
    }


async def publish_event(broker: KafkaBroker, event: Event, *, topic: str | None = None) -> None:
    """Publish an event on its contract's topic (or `topic`), keyed by case id; returns once acknowledged."""
    await broker.publish(
        event,
        topic=topic or event.TOPIC,
        key=event.key,
        headers=event_headers(event),
        correlation_id=event.correlation_id or str(event.event_id),
    )
