"""Kafka subscribers of the hotline, and the outbox relay that publishes what Kafka missed."""

from __future__ import annotations

import asyncio

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.kafka import publish_event
from contracts.events.hotline import HelpRequested

log = structlog.get_logger("hotline.handlers")
RELAY_INTERVAL_S = 1.0


def build_subscribers(runtime: Runtime) -> KafkaRouter | None:
    """The hotline consumes nothing yet in the skeleton."""
    return None


async def outbox_relay(runtime: Runtime) -> None:
    """Publish outbox entries in order once Kafka is back; each is marked only after the broker acked."""
    store = runtime.store
    while True:
        await runtime.kafka_connected.wait()
        try:
            for entry in await store.unpublished():
                await publish_event(runtime.broker, HelpRequested.model_validate(entry["event"]))
                await store.mark_published(entry["_id"])
                log.info("outbox entry relayed", case_id=entry["case_id"], seq=entry["seq"])
        except Exception as exc:  # noqa: BLE001 - retried on the next tick, in order
            log.warning("outbox relay paused", error=repr(exc))
        await asyncio.sleep(RELAY_INTERVAL_S)
