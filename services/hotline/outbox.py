"""No call is ever lost: every event the hotline emits is first stored in its outbox, then published.

- `Outbox.append` stores the event with a global sequence number. Once it returns, the call is safe.
- The API publishes directly only when nothing older waits in the outbox (the backlog is empty), so an
  outage never lets a new call overtake an older one; otherwise the relay is woken.
- The relay publishes waiting entries one by one in sequence order and marks each only after Kafka
  acknowledged it (`acks="all"`); on a failure it stops, backs off and starts again from the oldest.
- Entries claimed by a direct publish whose process died are taken over after `inflight_takeover_s`.
- Publishing twice is possible (a timed-out send may still land); consumers dedupe on case id or event id,
  so every call reaches the router exactly once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, TypeAdapter
from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from common.kafka import publish_event
from contracts.events.hotline import HelpRequested, HotlineCaseEvent

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from services.hotline.settings import Settings

log = structlog.get_logger("hotline.outbox")

QUEUED, INFLIGHT = "queued", "inflight"
_CASE_EVENT: TypeAdapter[Any] = TypeAdapter(HotlineCaseEvent)


def decode(entry: dict[str, Any]) -> BaseModel:
    body = entry["event"]
    if body.get("type") == "hotline.help_requested":
        return HelpRequested.model_validate(body)
    return _CASE_EVENT.validate_python(body)


class Outbox:
    """The outbox collection: entries `{_id: event_id, seq, state, published, event, ...}`."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.entries = db["outbox"]
        self.counters = db["counters"]

    async def ensure_indexes(self) -> None:
        await self.entries.create_index([("published", ASCENDING), ("seq", ASCENDING)])
        await self.entries.create_index("seq", unique=True)

    async def _next_seq(self) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": "outbox"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["seq"])

    async def backlog_empty(self) -> bool:
        """Nothing waits for the relay (entries in flight on a direct publish do not count)."""
        return await self.entries.find_one({"published": False, "state": QUEUED}, {"_id": 1}) is None

    async def append(self, event: Any, *, direct: bool, intake: dict[str, Any] | None = None) -> dict[str, Any]:
        """Store the event; `direct` claims it for an immediate publish by the caller."""
        now = datetime.now(UTC)
        entry = {
            "_id": str(event.event_id), "seq": await self._next_seq(), "topic": event.TOPIC,
            "case_id": event.case_id, "type": event.type, "event": event.model_dump(mode="json"),
            "published": False, "state": INFLIGHT if direct else QUEUED, "claimed_at": now, "created_at": now,
        }
        if intake is not None:  # lets the relay repair an intake record an interrupted request missed
            entry["intake"] = intake
        await self.entries.insert_one(entry)
        return entry

    async def mark_published(self, entry_id: str) -> None:
        await self.entries.update_one(
            {"_id": entry_id}, {"$set": {"published": True, "published_at": datetime.now(UTC)}, "$unset": {"intake": ""}}
        )

    async def release(self, entry_id: str) -> None:
        """A direct publish failed: hand the entry to the relay."""
        await self.entries.update_one({"_id": entry_id, "published": False}, {"$set": {"state": QUEUED}})

    async def waiting(self, limit: int, takeover_s: float) -> list[dict[str, Any]]:
        """Entries for the relay, oldest first: queued ones and abandoned in-flight ones."""
        cutoff = datetime.now(UTC) - timedelta(seconds=takeover_s)
        cursor = self.entries.find(
            {"published": False, "$or": [{"state": QUEUED}, {"claimed_at": {"$lt": cutoff}}]}
        ).sort("seq", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def pending_count(self) -> int:
        return await self.entries.count_documents({"published": False})


class Publisher:
    """Publishes outbox entries: directly from the API when the backlog is empty, else via the relay."""

    def __init__(self, outbox: Outbox, broker: KafkaBroker, settings: Settings, *,
                 kafka_connected: asyncio.Event, save_intake: Any) -> None:
        self.outbox = outbox
        self.broker = broker
        self.settings = settings
        self.kafka_connected = kafka_connected
        self.save_intake = save_intake  # async (intake document) -> None
        self.wake = asyncio.Event()
        self.draining = False

    async def accept(self, event: Any, *, intake: dict[str, Any] | None = None) -> bool:
        """Store the event (the call is safe from here), then publish it if the way is clear.

        Returns True when Kafka acknowledged it now, False when the relay will publish it."""
        direct = self.kafka_connected.is_set() and not self.draining and await self.outbox.backlog_empty()
        entry = await self.outbox.append(event, direct=direct, intake=intake)
        if intake is not None:
            await self.save_intake(intake)
        if not direct:
            self.wake.set()
            return False
        try:
            await asyncio.wait_for(publish_event(self.broker, event, topic=self.settings.topic(event.TOPIC)),
                                   timeout=self.settings.publish_timeout_s)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the entry to the relay, nothing is lost
            log.warning("direct publish failed; relay takes over", case_id=event.case_id, error=repr(exc))
            await self.outbox.release(entry["_id"])
            self.wake.set()
            return False
        await self.outbox.mark_published(entry["_id"])
        return True

    async def drain_once(self) -> int:
        """Publish waiting entries in order until none is left or one fails; returns how many went out."""
        sent = 0
        self.draining = True
        try:
            while batch := await self.outbox.waiting(self.settings.relay_batch, self.settings.inflight_takeover_s):
                for entry in batch:
                    if entry.get("intake") is not None:
                        await self.save_intake(entry["intake"])
                    event = decode(entry)
                    await asyncio.wait_for(publish_event(self.broker, event, topic=self.settings.topic(event.TOPIC)),
                                           timeout=self.settings.publish_timeout_s * 3)
                    await self.outbox.mark_published(entry["_id"])
                    sent += 1
                    log.info("outbox entry relayed", case_id=entry["case_id"], seq=entry["seq"])
        finally:
            self.draining = False
        return sent

    async def run_relay(self) -> None:
        """The relay loop: runs for the life of the service; survives Kafka and store outages."""
        failures = 0
        while True:
            await self.kafka_connected.wait()
            self.wake.clear()  # before draining: a call stored during the drain sets it again
            try:
                await self.drain_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried from the oldest entry after a backoff
                failures += 1
                delay = min(self.settings.relay_backoff_max_s, self.settings.relay_interval_s * 2 ** (failures - 1))
                log.warning("outbox relay paused", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.relay_interval_s)
