"""The entitlement event outbox: events are written into the entitlement document together with the
state change they announce (one atomic update, FerretDB has no transactions), then published and
removed. A relay publishes whatever a failed publish (Kafka down) left behind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from faststream.kafka import KafkaBroker

from common.kafka import publish_event
from contracts.events.relief import HukouDistrictNotified, grant_event
from services.relief.store import Doc, ReliefStore

log = structlog.get_logger("relief.outbox")


def utcnow() -> datetime:
    return datetime.now(UTC)


class Outbox:
    store: ReliefStore
    broker: KafkaBroker | None
    topic_namespace: str

    async def flush(self, entitlement_id: str, older_than: datetime | None = None) -> int:
        """Publish the entitlement's pending events, removing each once the broker acknowledged it.

        At least once: should two flushes overlap, an event is published twice with the same event_id,
        which consumers dedupe on."""
        if self.broker is None:
            return 0
        sent = 0
        for item in await self.store.outbox_of(entitlement_id):
            if older_than is not None and item["queued_at"] > older_than:
                continue  # just written: the request that wrote it is publishing it
            event = from_outbox(item)
            try:
                await publish_event(self.broker, event, topic=f"{self.topic_namespace}{event.TOPIC}")
            except Exception as exc:  # noqa: BLE001 - Kafka down: the relay publishes it later
                log.warning("event publish deferred to the outbox relay", error=repr(exc), event_id=item["event_id"])
                return sent
            await self.store.remove_from_outbox(entitlement_id, item)
            sent += 1
        return sent

    async def relay_outbox(self, min_age_s: float = 5.0) -> int:
        """Publish events left in outboxes (their first publish failed, e.g. Kafka was down)."""
        sent, cutoff = 0, utcnow() - timedelta(seconds=min_age_s)
        for doc in await self.store.with_outbox():
            sent += await self.flush(doc["_id"], older_than=cutoff)
        return sent


def outbox_item(event: Any) -> Doc:
    kind = "hukou" if isinstance(event, HukouDistrictNotified) else "grant"
    return {"event_id": str(event.event_id), "kind": kind, "queued_at": utcnow(), "body": event.model_dump(mode="json")}


def from_outbox(item: Doc) -> Any:
    if item["kind"] == "hukou":
        return HukouDistrictNotified.model_validate(item["body"])
    return grant_event.validate_python(item["body"])


