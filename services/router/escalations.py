"""Escalations (督办) on the desk: notify's `sla.escalated` events for cases the router holds are kept for
the department that must answer; its written answer goes through the case's write path (the history,
`case.escalation_acknowledged` in the case's outbox) and the escalation leaves the open list (P6.2, P6.3).
A second answer is refused."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog

from common.batches import Rejected
from common.errors import NotFound
from common.principal import Principal
from contracts.events import BAD_RECORD, BUSINESS_TZ, SLA_EVENTS_TOPIC, read_event, utcnow
from contracts.events.notify import SlaEscalated
from services.router.cases import CaseService
from services.router.domain.case import Case
from services.router.domain.errors import wrong_state
from services.router.domain.escalations import (
    ACKNOWLEDGED,
    Escalation,
    acknowledge,
    answered,
    escalation_of,
    may_answer,
)

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = structlog.get_logger("router.escalations")


async def record_escalations(service: CaseService, records: Sequence[ConsumerRecord]) -> Rejected:
    """A batch of notify's SLA records: each escalation of a case this router holds is kept for its
    department (one read of the cases, one insert); warnings, breaches and other cases pass by; a record
    that is not a valid SLA event comes back to be dead-lettered."""
    rejected: Rejected = []
    events: list[SlaEscalated] = []
    for record in records:
        try:
            event = read_event(SLA_EVENTS_TOPIC, record.value)
        except BAD_RECORD as exc:
            rejected.append((record, exc))
            continue
        if isinstance(event, SlaEscalated):
            events.append(event)
    if events:
        cases = await service.cases.current(list(dict.fromkeys(e.case_id for e in events)))
        kept = [e for event in events if (case := cases.get(event.case_id)) and (e := escalation_of(event, case))]
        await service.store.add_escalations(kept)
        if kept:
            log.info("escalations to be answered", escalations=len(kept))
    return rejected


async def visible_escalations(service: CaseService, who: Principal) -> list[Escalation]:
    """A worker's department's open escalations in their district; a coordinator's district's (or all)."""
    if who.role.value == "dept_worker":
        return await service.store.open_escalations(who.department, who.district)
    return await service.store.open_escalations(None, None if who.city_level else who.district)


def _already_answered(at: datetime, by: str) -> Exception:
    when = at.astimezone(BUSINESS_TZ).strftime("%Y-%m-%d %H:%M")
    return wrong_state(
        f"该督办已于 {when} 由 {by} 答复，不能重复答复",
        f"this escalation was already answered at {when} by {by}; a second answer is not taken",
        field="escalation_event_id",
    )


async def answer(
    service: CaseService, escalation_event_id: str, worker: Principal, text: str
) -> tuple[Case, Escalation, datetime]:
    """The department's written answer to an open escalation: through `CaseService.update` (history and
    the event in the case's outbox), then the escalation leaves the open list."""
    escalation = await service.store.escalation(escalation_event_id)
    if escalation is None:
        if (done := await service.store.answer_of(escalation_event_id)) is not None:
            raise _already_answered(*done)
        raise NotFound(
            f"督办 {escalation_event_id} 不存在或已答复",
            f"escalation {escalation_event_id} does not exist or was already answered",
            field="escalation_event_id",
        )
    may_answer(escalation, worker)
    current = await service.store.get(escalation.case_id)
    if current is not None and answered(current, escalation_event_id):
        # Answered, but a crash kept it listed: take it off the list and say so.
        entry = next(h for h in current.history if h.action == ACKNOWLEDGED and h.event_id == escalation_event_id)
        await service.store.close_escalation(escalation, at=entry.at, by=entry.actor)
        raise _already_answered(entry.at, entry.actor)
    now = utcnow()
    case, _ = await service.update(escalation.case_id, lambda c: acknowledge(c, escalation, worker, text, now))
    await service.store.close_escalation(escalation, at=now, by=worker.shown_as)
    log.info("escalation answered", case_id=case.case_id, escalation_event_id=escalation_event_id, by=worker.sub)
    return case, escalation, now
