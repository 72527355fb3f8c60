"""No call is ever lost: every event the hotline emits is first stored in its outbox, then published.

- `Outbox.append` (the collection, in store.py) stores the event with a sequence number. Once it returns,
  the call is safe.
- The API publishes directly only while this process has no backlog, so an outage never lets a new call
  overtake an older one; otherwise the relay is woken. A direct publish runs alongside the outbox write:
  the call is accepted once either has succeeded (Kafka's ack, or the stored entry). The answer waits for
  Kafka's ack only within the intake's time bound; a publish still on its way then settles in the background.
- The relay publishes waiting entries a batch at a time in sequence order (one producer keeps the order
  per partition) and removes them only after Kafka acknowledged them (`acks="all"`); on a failure it
  removes the acknowledged ones before it, backs off and starts again from the oldest.
- A direct publish's entry is removed after Kafka's ack too, off the answer's path: the removals of
  `REMOVAL_LINGER_S` go together in one command (each call's own would be one more per call). An entry
  claimed by a direct publish whose process died is taken over after `inflight_takeover_s`.
- The outbox holds only what is not yet acknowledged, so the relay's queries stay small (FerretDB scans
  a collection for any filter but `_id`); the intake record is the permanent copy of every call.
- Publishing twice is possible (a timed-out send may still land, a removal may be lost in a crash);
  consumers dedupe on case id or event id, so every call reaches the router exactly once in effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING, Any

import structlog

from common.consumer import backoff_delay
from common.kafka import publish_event, publish_events
from contracts.events import Event, read_event

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

    from services.hotline.settings import Settings
    from services.hotline.store import Outbox

log = structlog.get_logger("hotline.outbox")
REMOVAL_LINGER_S = 0.2  # acknowledged entries gathered for one removal (module docstring)


def decode(entry: dict[str, Any]) -> Event:
    """The event an outbox entry holds, read back as a record of its topic is."""
    return read_event(entry["topic"], json.dumps(entry["event"]).encode())


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
        self._settling: set[asyncio.Future[bool]] = set()  # direct publishes answered before Kafka's ack
        self._owed: list[Event] = []  # stored intakes whose event neither the outbox nor Kafka took (`_owe`)

    async def _publish(self, event: Event, timeout: float) -> None:
        await asyncio.wait_for(publish_event(self.broker, event, topic=self.settings.topic(event.TOPIC)), timeout)

    async def accept(self, event: Event, wait_s: float | None = None) -> bool:
        """Store the event (the call is safe from here), then publish it if the way is clear.

        Returns True when Kafka acknowledged it within `wait_s` (None: the publish timeout), False when the
        relay will publish it or the direct publish is still on its way (it settles in the background: the
        entry is removed after the ack, or handed to the relay if the publish fails)."""
        direct = self.kafka_connected.is_set() and not self.backlog
        if not direct:
            try:
                await self.outbox.append(event, direct=False)
            except Exception:
                self._owe(event)
                raise
            self._queued()
            return False
        # Store and send at the same time: the call is safe as soon as either has succeeded.
        sending = asyncio.ensure_future(self._publish(event, self.settings.publish_timeout_s))
        try:
            stored = await self.outbox.append(event, direct=True)
        except Exception as exc:  # noqa: BLE001 - Kafka's ack alone still makes the call safe
            try:
                await sending
            except Exception:  # noqa: BLE001 - neither the store nor Kafka has it: the call is not accepted
                self._owe(event)
                raise exc from None
            log.warning("outbox write failed but Kafka acknowledged", case_id=event.case_id, error=repr(exc))
            return True
        done, _ = await asyncio.wait({sending}, timeout=wait_s)
        if not done:  # the caller is not kept waiting on Kafka: the stored entry already makes the call safe
            settling = asyncio.ensure_future(self._settle(sending, stored["_id"], event.case_id))
            self._settling.add(settling)
            settling.add_done_callback(self._settling.discard)
            return False
        return await self._settle(sending, stored["_id"], event.case_id)

    async def _settle(self, sending: asyncio.Future[None], entry_id: str, case_id: str) -> bool:
        """After a direct publish: remove the entry once acknowledged, or hand it to the relay."""
        try:
            await sending
        except Exception as exc:  # noqa: BLE001 - the stored entry goes by the relay instead
            log.warning("direct publish failed; relay takes over", case_id=case_id, error=repr(exc))
            self._queued()
            try:
                await self.outbox.release(entry_id)
            except Exception as release_error:  # noqa: BLE001 - taken over after inflight_takeover_s
                log.warning("entry not handed to the relay", case_id=case_id, error=repr(release_error))
            return False
        self._mark_later(entry_id)
        return True

    def _owe(self, event: Event) -> None:
        """An event neither the outbox nor Kafka took, while its intake record is stored: this process keeps
        it and stores it in the outbox first thing in the relay's next round (a repeat of the request with
        its Idempotency-Key publishes it too; consumers take a call once)."""
        self._owed.append(event)
        log.warning("event kept in memory until the outbox takes it", case_id=getattr(event, "case_id", None))
        self._queued()

    @property
    def owed(self) -> int:
        """Events this process holds for the outbox (their intake records stored, the outbox write failed)."""
        return len(self._owed)

    def _queued(self) -> None:
        self.backlog = True
        self.wake.set()

    def _mark_later(self, entry_id: str) -> None:
        self._to_mark.append(entry_id)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.ensure_future(self._flush_marks())

    async def _flush_marks(self) -> None:
        """Remove acknowledged entries in batches. A lost removal only means a harmless second publish later."""
        await asyncio.sleep(REMOVAL_LINGER_S)
        while self._to_mark:
            batch, self._to_mark = self._to_mark, []
            try:
                await self.outbox.remove(*batch)
            except Exception as exc:  # noqa: BLE001 - the relay takes these over after inflight_takeover_s
                log.warning("could not remove acknowledged entries", count=len(batch), error=repr(exc))

    async def flush(self) -> None:
        """Wait until every direct publish has settled and every acknowledged one has left the outbox
        (tests, shutdown)."""
        while self._settling:
            await asyncio.gather(*self._settling, return_exceptions=True)
        while self._marking is not None and not self._marking.done():
            await self._marking

    async def drain_once(self) -> int:
        """Publish waiting entries in order until none is left or one fails; returns how many went out."""
        sent = 0
        self.wake.clear()  # a call stored while this drain runs sets it again
        while self._owed:  # into the outbox first: from there they go in order with the rest
            await self.outbox.append(self._owed[0], direct=False)
            self._owed.pop(0)
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
