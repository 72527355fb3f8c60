"""No call is ever lost: every event the hotline emits is first stored in its outbox, then published.

- `Outbox.append` stores the event with a sequence number. Once it returns, the call is safe.
- The API publishes directly only while this process has no backlog, so an outage never lets a new call
  overtake an older one; otherwise the relay is woken. A direct publish runs alongside the outbox write:
  the call is accepted once either has succeeded (Kafka's ack, or the stored entry).
- The relay publishes waiting entries a batch at a time in sequence order (one producer keeps the order
  per partition) and removes them only after Kafka acknowledged them (`acks="all"`); on a failure it
  removes the acknowledged ones before it, backs off and starts again from the oldest.
- A direct publish's entry is removed after Kafka's ack too, batched off the answer's path. An entry
  claimed by a direct publish whose process died is taken over after `inflight_takeover_s`.
- The outbox holds only what is not yet acknowledged, so the relay's queries stay small (FerretDB scans
  a collection for any filter but `_id`); the intake record is the permanent copy of every call.
- Publishing twice is possible (a timed-out send may still land, a removal may be lost in a crash);
  consumers dedupe on case id or event id, so every call reaches the router exactly once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import BaseModel, TypeAdapter
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.consumer import backoff_delay
from common.kafka import publish_event, publish_events
from common.store import GroupInserts, busy_retry, delete_by_ids
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
    """The outbox collection: entries `{_id: event_id, seq, state, event, ...}` not yet acknowledged."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.entries = db["outbox"]
        self._inserts = GroupInserts(self.entries)  # concurrent calls' entries in one insert
        self._next: int | None = None

    async def ensure_indexes(self) -> None:
        await self.entries.create_index("seq", unique=True)

    async def _take_seq(self) -> int:
        """The next sequence number, counted in memory from the highest stored one; the unique index on
        `seq` settles a race with another process."""
        if self._next is None:
            last = await self.entries.find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
            self._next = max(self._next or 1, (last["seq"] + 1) if last else 1)
        seq = self._next
        self._next = seq + 1
        return seq

    async def append(self, event: Any, *, direct: bool) -> dict[str, Any]:
        """Store the event; `direct` claims it for an immediate publish by the caller."""
        now = datetime.now(UTC)
        entry = {
            "_id": str(event.event_id),
            "topic": event.TOPIC,
            "case_id": event.case_id,
            "type": event.type,
            "event": event.model_dump(mode="json"),
            "state": INFLIGHT if direct else QUEUED,
            "claimed_at": now,
            "created_at": now,
        }
        while True:
            entry["seq"] = await self._take_seq()
            try:
                await self._inserts.insert(entry)
            except DuplicateKeyError:
                if await self.entries.find_one({"_id": entry["_id"]}, {"_id": 1}) is not None:
                    return entry  # the same event appended twice: once is enough
                self._next = None  # another process took that seq: recount from the highest
                continue
            return entry

    async def remove(self, *entry_ids: str) -> None:
        """Kafka acknowledged these: they leave the outbox (the intake record keeps the call)."""
        await delete_by_ids(self.entries, entry_ids)

    async def release(self, entry_id: str) -> None:
        """A direct publish failed: hand the entry to the relay."""
        await busy_retry(lambda: self.entries.update_one({"_id": entry_id}, {"$set": {"state": QUEUED}}))

    async def waiting(self, limit: int, takeover_s: float) -> list[dict[str, Any]]:
        """Entries for the relay, oldest first: queued ones and abandoned in-flight ones."""
        cutoff = datetime.now(UTC) - timedelta(seconds=takeover_s)
        cursor = (
            self.entries.find({"$or": [{"state": QUEUED}, {"claimed_at": {"$lt": cutoff}}]})
            .sort("seq", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def pending_count(self) -> int:
        return await self.entries.count_documents({})


class Publisher:
    """Publishes outbox entries: directly from the API while there is no backlog, else via the relay."""

    def __init__(
        self, outbox: Outbox, broker: KafkaBroker, settings: Settings, *, kafka_connected: asyncio.Event
    ) -> None:
        self.outbox = outbox
        self.broker = broker
        self.settings = settings
        self.kafka_connected = kafka_connected
        self.wake = asyncio.Event()
        # Until the relay has looked, entries a previous run left behind may be waiting.
        self.backlog = True
        self._to_mark: list[str] = []
        self._marking: asyncio.Task[None] | None = None

    async def _publish(self, event: Any, timeout: float) -> None:
        await asyncio.wait_for(publish_event(self.broker, event, topic=self.settings.topic(event.TOPIC)), timeout)

    async def accept(self, event: Any) -> bool:
        """Store the event (the call is safe from here), then publish it if the way is clear.

        Returns True when Kafka acknowledged it now, False when the relay will publish it."""
        direct = self.kafka_connected.is_set() and not self.backlog
        if not direct:
            await self.outbox.append(event, direct=False)
            self._queued()
            return False
        # Store and send at the same time: the call is safe as soon as either has succeeded.
        stored, sent = await asyncio.gather(
            self.outbox.append(event, direct=True),
            self._publish(event, self.settings.publish_timeout_s),
            return_exceptions=True,
        )
        if isinstance(stored, BaseException):
            if isinstance(sent, BaseException):
                raise stored  # neither the store nor Kafka has it: the call is not accepted
            log.warning("outbox write failed but Kafka acknowledged", case_id=event.case_id, error=repr(stored))
            return True
        if isinstance(sent, BaseException):
            log.warning("direct publish failed; relay takes over", case_id=event.case_id, error=repr(sent))
            self._queued()
            await self.outbox.release(stored["_id"])
            return False
        self._mark_later(stored["_id"])
        return True

    def _queued(self) -> None:
        self.backlog = True
        self.wake.set()

    def _mark_later(self, entry_id: str) -> None:
        self._to_mark.append(entry_id)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.ensure_future(self._flush_marks())

    async def _flush_marks(self) -> None:
        """Remove acknowledged entries in batches. A lost removal only means a harmless second publish later."""
        while self._to_mark:
            batch, self._to_mark = self._to_mark, []
            try:
                await self.outbox.remove(*batch)
            except Exception as exc:  # noqa: BLE001 - the relay takes these over after inflight_takeover_s
                log.warning("could not remove acknowledged entries", count=len(batch), error=repr(exc))

    async def flush(self) -> None:
        """Wait until every acknowledged direct publish has left the outbox (tests, shutdown)."""
        while self._marking is not None and not self._marking.done():
            await self._marking

    async def drain_once(self) -> int:
        """Publish waiting entries in order until none is left or one fails; returns how many went out."""
        sent = 0
        self.wake.clear()  # a call stored while this drain runs sets it again
        try:
            while batch := await self.outbox.waiting(self.settings.relay_batch, self.settings.inflight_takeover_s):
                events = [(event := decode(entry), self.settings.topic(event.TOPIC)) for entry in batch]
                acked, error = await publish_events(self.broker, events, timeout=self.settings.publish_timeout_s * 3)
                if acked:
                    await self.outbox.remove(*(entry["_id"] for entry in batch[:acked]))
                    sent += acked
                if error is not None:
                    raise error
        finally:
            if sent:  # one line per drain: after a long outage there are thousands of entries
                log.info("outbox entries relayed", count=sent)
        if not self.wake.is_set():  # nothing was stored while the last query ran: direct publishing again
            self.backlog = False
        return sent

    async def run_relay(self) -> None:
        """The relay loop: runs for the life of the service; survives Kafka and store outages."""
        try:
            await self._relay_forever()
        finally:  # shutting down: record what Kafka already acknowledged, so it is not sent again
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.flush(), timeout=5)

    async def _relay_forever(self) -> None:
        failures = 0
        while True:
            await self.kafka_connected.wait()
            try:
                await self.drain_once()
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - retried from the oldest entry after a backoff
                self.backlog = True
                failures += 1
                delay = backoff_delay(failures, self.settings.relay_interval_s, self.settings.relay_backoff_max_s)
                log.warning("outbox relay paused", error=repr(exc), retry_in_s=round(delay, 2))
                await asyncio.sleep(delay)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout=self.settings.relay_interval_s)
