"""Applying one event to a case: fold it into the state, write it with a version check, keep the timers
and the caller texts in step with the state. Shared by the Kafka handlers and the pause API.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog

from services.notify.domain import case as case_rules
from services.notify.domain import texts
from services.notify.domain.case import CaseState
from services.notify.domain.policy import SlaPolicy
from services.notify.domain.summary import summary
from services.notify.outbox import Outbox
from services.notify.store import APPLIED_KEPT, NotifyStore
from services.notify.timers import Timer

log = structlog.get_logger("notify.clockwork")
MAX_CONFLICTS = 20


class ConcurrentUpdate(ConnectionError):
    """The case kept changing under us; transient, so the consumer policy retries the message."""


Change = Callable[[CaseState | None], CaseState | None]


@dataclass
class Clockwork:
    store: NotifyStore
    policy: SlaPolicy
    outbox: Outbox
    caller_texts: bool = True
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict, repr=False)
    _waiting: dict[str, int] = field(default_factory=dict, repr=False)

    @contextlib.asynccontextmanager
    async def _exclusive(self, case_id: str) -> AsyncIterator[None]:
        """One writer per case in this process, so the events of one case arriving on different topics do
        not keep losing version races to each other (across processes the store's version claims decide)."""
        lock = self._locks.setdefault(case_id, asyncio.Lock())
        self._waiting[case_id] = self._waiting.get(case_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiting[case_id] -= 1
            if not self._waiting[case_id]:
                del self._waiting[case_id], self._locks[case_id]

    async def record(self, case_id: str, event_id: str, change: Change) -> CaseState | None:
        """Apply `change` once per `event_id`; a redelivery only finishes what a crash may have left."""
        async with self._exclusive(case_id):
            return await self._record(case_id, event_id, change)

    async def _record(self, case_id: str, event_id: str, change: Change) -> CaseState | None:
        for _ in range(MAX_CONFLICTS):
            doc = await self.store.load(case_id)
            state = CaseState.model_validate(doc["state"]) if doc else None
            if doc is not None and event_id in doc.get("applied", []):
                await self._follow_up(doc, state)
                return state
            new = change(state)
            if new is None or new == (state or CaseState(case_id=case_id)):
                return state  # nothing this event changes (nor a case it would open): no write
            now = datetime.now(UTC)
            scheduled = {s["id"]: s["bucket"] for s in (doc or {}).get("scheduled", [])}
            desired = {t.id: t for t in case_rules.timers(new, self.policy)}
            fresh = [Timer(t.id, t.at, t.payload) for i, t in desired.items() if i not in scheduled]
            placed = await self.store.sla_timers.schedule(fresh, now)
            cancelled = [{"id": i, "bucket": b} for i, b in scheduled.items() if i not in desired]
            document: dict[str, Any] = {
                "state": new.model_dump(),
                **summary(new),
                "scheduled": [{"id": i, "bucket": scheduled.get(i, placed.get(i))} for i in desired],
                "cancelled": cancelled,
                "applied": ((doc or {}).get("applied", []) + [event_id])[-APPLIED_KEPT:],
            }
            if await self.store.save(case_id, doc, document):
                await self._follow_up(document, new, already=set(state.texts) if state else set())
                return new
            # Someone else changed the case: undo what we added, read again.
            await self.store.sla_timers.cancel((t.id, placed[t.id]) for t in fresh)
        raise ConcurrentUpdate(f"case {case_id} changed {MAX_CONFLICTS} times while applying {event_id}")

    async def _follow_up(self, doc: dict[str, Any], state: CaseState | None, already: set[str] = frozenset()) -> None:
        """Idempotent effects of the stored state: drop cancelled timers, queue the texts it calls for
        (all of them after a redelivery, which may follow a crash; else those this event added)."""
        await self.store.sla_timers.cancel((c["id"], c["bucket"]) for c in doc.get("cancelled", []))
        if state is None:
            return
        if state.status in ("closed", "merged"):
            # Keep the phone only while a text to the caller is still on its way.
            if not await self.store.caller_text_pending(state.case_id):
                await self.store.forget_caller(state.case_id)
        elif self.caller_texts:
            for notification in self.caller_notifications(state):
                if notification.key not in already:
                    await self.outbox.enqueue(notification)

    def caller_notifications(self, state: CaseState) -> list[texts.Notification]:
        out = []
        for key in state.texts:
            if key.endswith("|caller_dispatched"):
                due = state.citizen.due("resolution") if state.citizen else None
                first_lead = next((c for c in state.assignments if c.role == "lead"), None)
                out.append(texts.caller_dispatched(key, state.case_id, district=state.district,
                                                   department=first_lead.department if first_lead else None,
                                                   due_at=due, tz=self.policy.tz))
            elif "|caller_resolved|" in key:
                out.append(texts.caller_resolved(key, state.case_id, outcome=state.outcome))
        return out


@dataclass
class Notify:
    """What the running service holds (Runtime.store): the store, the policy, the clockwork, the outbox."""

    store: NotifyStore
    policy: SlaPolicy
    clockwork: Clockwork
    outbox: Outbox
