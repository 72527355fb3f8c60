"""Applying events to cases: fold them into the state through the shared write path (`common.aggregates`),
and keep the timers and the caller texts in step with the state. Shared by the Kafka handlers (a batch
of records at a time) and the pause API (one change).

A case's document holds its clocks (the state), the flat facts the views filter on (`summary`), the
timers it has placed (`scheduled`: id -> bucket), the ids of the events already applied, and an outbox
of effects: timers to place and to cancel, texts to send, the caller's phone to forget. The effects run
after the write, for the whole batch at once (one insert per timer bucket, one delete per bucket, one
insert of texts); they are idempotent (natural ids), so a sweep after a crash runs them again safely.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pydantic import BaseModel, Field

from common.aggregates import Aggregates, Codec, Entry
from common.store import gather_all
from services.notify.domain import case as case_rules
from services.notify.domain import texts
from services.notify.domain.case import CaseState
from services.notify.domain.policy import SlaPolicy
from services.notify.domain.summary import summary
from services.notify.outbox import Outbox
from services.notify.settings import Settings
from services.notify.store import APPLIED_KEPT, FINISHED, NotifyStore
from services.notify.timers import Timer

log = structlog.get_logger("notify.clockwork")

StateChange = Callable[[CaseState | None], CaseState | None]
CLOSED = ("closed", "merged")


class NotifyCase(BaseModel):
    """A case as notify stores it (the aggregate of its write path)."""

    case_id: str
    state: CaseState
    scheduled: dict[str, int] = Field(default_factory=dict)  # timer id -> bucket
    applied: list[str] = Field(default_factory=list)
    outbox: list[Entry] = Field(default_factory=list)


def _load(doc: dict[str, Any]) -> NotifyCase:
    return NotifyCase(
        case_id=doc["_id"],
        state=CaseState.model_validate(doc["state"]),
        scheduled={s["id"]: s["bucket"] for s in doc.get("scheduled", [])},
        applied=list(doc.get("applied", [])),
        outbox=list(doc.get("outbox") or []),
    )


def _dump(case: NotifyCase) -> dict[str, Any]:
    return {
        "_id": case.case_id,
        "state": case.state.model_dump(),
        **summary(case.state),
        "scheduled": [{"id": i, "bucket": b} for i, b in case.scheduled.items()],
        "applied": case.applied,
        "outbox": case.outbox,
    }


CODEC = Codec(load=_load, dump=_dump)


@dataclass
class Clockwork:
    store: NotifyStore
    policy: SlaPolicy
    outbox: Outbox
    caller_texts: bool = True
    cases: Aggregates[NotifyCase] = field(init=False)

    def __post_init__(self) -> None:
        self.cases = Aggregates(
            self.store.cases,
            self.store.case_claims,
            CODEC,
            self.run_effects,
            archive=self.store.cases_archive,
            archive_after=self.store.archive_after,
            finished=FINISHED,
            archived=self.store.archive_followers,  # a case's contact, texts and SLA events follow it
            pack_outbox=True,  # its timers to place: most of what a case weighs, and every lookup reads it all
        )
        self.store.may_be_archived = self.cases.may_be_archived  # reads by id follow the write path's archive age
        if self.outbox is not None:  # None: folding events in memory only (the benchmark's history)
            self.outbox.case_statuses = self.statuses

    async def statuses(self, case_ids: Sequence[str]) -> dict[str, str | None]:
        """Each case's status as it stands (`Aggregates.current`): from what this process wrote, else read. A
        case's events come to one notify process of the consumer group, whose writes are the case's; on
        FerretDB a read decodes the whole case (7 KB), and every caller text that ends asks for it."""
        return {case_id: case.state.status for case_id, case in (await self.cases.current(case_ids)).items()}

    # ------------------------------------------------------------------ folding (pure)

    def fold(
        self, case_id: str, steps: Sequence[tuple[str, StateChange]], now: datetime
    ) -> Callable[[NotifyCase | None], NotifyCase | None]:
        """The write path's change for a case: apply each (event id, state change) once, in order, and
        queue the effects the new state calls for. None when no step changes anything."""

        def change(current: NotifyCase | None) -> NotifyCase | None:
            case = current
            for event_id, step in steps:
                case = self._step(case, case_id, event_id, step, now) or case
            return case if case is not current else None

        return change

    def _step(
        self, case: NotifyCase | None, case_id: str, event_id: str, change: StateChange, now: datetime
    ) -> NotifyCase | None:
        if case is not None and event_id in case.applied:
            return None  # a redelivery: what it caused is done, or in the outbox
        old = case.state if case is not None else None
        new = change(old)
        if new is None or new == (old or CaseState(case_id=case_id)):
            return None  # nothing this event changes (nor a case it would open): no write
        scheduled = dict(case.scheduled) if case is not None else {}
        desired = {t.id: t for t in case_rules.timers(new, self.policy)}
        wheel = self.store.sla_timers
        fresh = [
            {"id": t.id, "due_at": t.at, "payload": t.payload, "bucket": wheel.bucket_of(t.at, now)}
            for i, t in desired.items()
            if i not in scheduled
        ]
        gone = [{"id": i, "bucket": b} for i, b in scheduled.items() if i not in desired]
        effects: list[Entry] = list(case.outbox) if case is not None else []
        if fresh:
            effects.append({"op": "schedule", "timers": fresh})
        if gone:
            effects.append({"op": "cancel", "timers": gone})
        if new.status in CLOSED:
            effects.append({"op": "forget_caller"})
        elif self.caller_texts:
            already = set(old.texts) if old is not None else set()
            effects += [
                {"op": "text", **vars(n), "event_id": event_id}
                for n in self.caller_notifications(new)
                if n.key not in already
            ]
        placed = {t["id"]: t["bucket"] for t in fresh}
        return NotifyCase(
            case_id=case_id,
            state=new,
            scheduled={i: scheduled.get(i, placed.get(i, 0)) for i in desired},
            applied=((case.applied if case is not None else []) + [event_id])[-APPLIED_KEPT:],
            outbox=effects,
        )

    def caller_notifications(self, state: CaseState) -> list[texts.Notification]:
        out: list[texts.Notification] = []
        for key in state.texts:
            if key.endswith("|caller_dispatched"):
                due = state.citizen.due("resolution") if state.citizen else None
                first_lead = next((c for c in state.assignments if c.role == "lead"), None)
                out.append(
                    texts.caller_dispatched(
                        key,
                        state.case_id,
                        district=first_lead.district if first_lead else state.district,  # the lead's district
                        department=first_lead.department if first_lead else None,
                        due_at=due,
                        tz=self.policy.tz,
                    )
                )
            elif "|caller_resolved|" in key:
                out.append(texts.caller_resolved(key, state.case_id, outcome=state.outcome))
        return out

    # ------------------------------------------------------------------ writing

    async def record(self, case_id: str, event_id: str, change: StateChange) -> CaseState | None:
        """Apply one change once per `event_id` (the pause API); the case's state afterwards."""
        written = await self.cases.change(case_id, self.fold(case_id, [(event_id, change)], datetime.now(UTC)))
        if written is not None:
            return written.value.state
        doc = await self.store.load(case_id)
        return CaseState.model_validate(doc["state"]) if doc else None

    async def record_many(
        self, steps: Iterable[tuple[str, str, StateChange]], *, new: Collection[str] = ()
    ) -> dict[str, Exception]:
        """Apply a batch of (case id, event id, change), in order per case, in one pass of the write path.
        `new`: cases whose first event here opens them (not read: see `Aggregates.change_many`). Returns
        the cases whose change raised, with the error."""
        by_case: dict[str, list[tuple[str, StateChange]]] = defaultdict(list)
        for case_id, event_id, change in steps:
            by_case[case_id].append((event_id, change))
        now = datetime.now(UTC)
        outcome = await self.cases.change_many(
            {case_id: self.fold(case_id, case_steps, now) for case_id, case_steps in by_case.items()}, new=new
        )
        return outcome.failed

    # ------------------------------------------------------------------ effects (after the write)

    async def run_effects(self, outboxes: Sequence[tuple[str, list[Entry]]]) -> None:
        """Place and cancel timers, queue texts and forget phones for a batch of cases. A timer id's last
        effect wins (placed, then cancelled in one batch: cancelled)."""
        last: dict[str, tuple[str, dict[str, Any]]] = {}
        notifications: list[texts.Notification] = []
        forget: list[str] = []
        for case_id, entries in outboxes:
            for entry in entries:
                if entry["op"] in ("schedule", "cancel"):
                    for timer in entry["timers"]:
                        last[timer["id"]] = (entry["op"], timer)
                elif entry["op"] == "text":
                    notifications.append(texts.Notification(**{k: v for k, v in entry.items() if k != "op"}))
                elif entry["op"] == "forget_caller":
                    forget.append(case_id)
        placing: dict[int, list[Timer]] = defaultdict(list)
        cancelling: list[tuple[str, int]] = []
        for op, timer in last.values():
            if op == "schedule":
                placing[timer["bucket"]].append(Timer(timer["id"], timer["due_at"], timer["payload"]))
            else:
                cancelling.append((timer["id"], timer["bucket"]))
        # Timers placed and cancelled (other ids: a timer's last effect was taken above) and texts queued, all
        # at once; the phones are forgotten after, once the texts still on their way are recorded.
        await gather_all(
            [
                self.store.sla_timers.place(placing),
                self.store.sla_timers.cancel(cancelling),
                *([self.outbox.enqueue_many(notifications)] if notifications else []),
            ]
        )
        await self.store.forget_callers_texted(forget)  # keep a phone only while a text to the caller is on its way


@dataclass
class Notify:
    """What the running service holds (Runtime.service): the store, the policy, the clockwork, the outbox."""

    store: NotifyStore
    policy: SlaPolicy
    clockwork: Clockwork
    outbox: Outbox

    @property
    def settings(self) -> Settings:
        """Notify's own settings (`Runtime.settings` is typed as the common base)."""
        return self.outbox.settings
