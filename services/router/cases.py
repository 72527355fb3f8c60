"""The router's use cases: apply a domain change to a case, store it, publish what it caused.

Each change is read → pure domain function → versioned write (retried on a concurrent change) → publish
the outbox → trim the outbox. A crash between the write and the publish leaves the events in the
document's outbox; the sweeper publishes them later (consumers dedupe on event id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import structlog
from faststream.kafka import KafkaBroker

from common.kafka import publish_event
from contracts.events.base import Event
from contracts.events.hotline import HelpRequested
from contracts.events.router import case_lifecycle_event, department_queue_message
from services.router.domain.case import Case
from services.router.domain.catalogue import DispatchCatalogue
from services.router.domain.dispatching import open_case, utcnow
from services.router.domain.errors import case_not_found
from services.router.domain.routing import RoutingFacts, decide
from services.router.settings import Settings
from services.router.store import RouterStore

log = structlog.get_logger("router.cases")
T = TypeVar("T")
MAX_CONFLICT_RETRIES = 20


class ConcurrentChange(Exception):
    """The case kept changing under us; the caller may retry."""


@dataclass
class CaseService:
    store: RouterStore
    broker: KafkaBroker
    settings: Settings
    catalogue: DispatchCatalogue
    _locks: tuple[asyncio.Lock, ...] = field(default_factory=lambda: tuple(asyncio.Lock() for _ in range(256)))

    @property
    def max_returns(self) -> int:
        return self.settings.max_returns or self.catalogue.max_returns

    def _event(self, entry: dict[str, Any]) -> tuple[str, Event]:
        if entry["queue"] == "department":
            return self.settings.department_topic(entry["department"]), department_queue_message.validate_python(
                entry["body"])
        return self.settings.lifecycle_topic, case_lifecycle_event.validate_python(entry["body"])

    async def publish(self, entries: list[dict[str, Any]]) -> None:
        """Publish outbox entries: in order within a topic (one case's order), topics concurrently."""
        by_topic: dict[str, list[Event]] = {}
        for entry in entries:
            topic, event = self._event(entry)
            by_topic.setdefault(topic, []).append(event)

        async def in_order(topic: str, events: list[Event]) -> None:
            for event in events:
                await publish_event(self.broker, event, topic=topic)

        await asyncio.gather(*(in_order(t, evs) for t, evs in by_topic.items()))

    def _lock(self, case_id: str) -> asyncio.Lock:
        return self._locks[hash(case_id) % len(self._locks)]

    async def flush(self, case: Case) -> None:
        if case.outbox:
            await self.publish(case.outbox)
            await self.store.clear_outbox(case)

    async def update(self, case_id: str, change: Callable[[Case], T]) -> tuple[Case, T]:
        """Apply `change` (a pure domain function that mutates the case) and persist it, then publish.

        Changes to one case are serialised in this process by a lock, and across processes by the
        store's version claims (a lost race re-reads and re-applies)."""
        async with self._lock(case_id):
            for attempt in range(MAX_CONFLICT_RETRIES):
                current = await self.store.get(case_id)
                if current is None:
                    raise case_not_found(case_id)
                work = current.model_copy(deep=True)
                result = change(work)
                if result is False and work.outbox == current.outbox:
                    return current, result  # nothing to do (a duplicate, or already in that state)
                if await self.store.replace(work):
                    await self.flush(work)
                    return work, result
                await asyncio.sleep(0.01 * (attempt + 1))
        raise ConcurrentChange(case_id)

    async def dispatch_request(self, request: HelpRequested) -> Case | None:
        """Route and record a new case, then publish its tasks and dispatch; on redelivery republish the same."""
        facts = RoutingFacts.of(request)
        routing = decide(self.catalogue, facts)
        case = open_case(request.case_id, facts, routing, self.catalogue, now=utcnow(),
                         correlation_id=request.correlation_id or str(request.event_id),
                         summary=request.description[:200])
        entries, case.outbox = case.outbox, []
        if await self.store.insert_case(case, initial_events=entries):
            await self.publish(entries)
            return case
        # Redelivered: the case exists; publish exactly the events recorded with it (same event ids).
        await self.publish(await self.store.initial_events(request.case_id))
        return None

    async def sweep_outboxes(self) -> int:
        """Publish outboxes a crash left behind (older than the grace period). Returns how many cases."""
        before = utcnow() - timedelta(seconds=self.settings.outbox_grace_s)
        cases = await self.store.pending_outboxes(before)
        for stale in cases:
            async with self._lock(stale.case_id):
                case = await self.store.get(stale.case_id)
                if case is not None:
                    await self.flush(case)
        return len(cases)
