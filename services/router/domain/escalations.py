"""Escalations (督办) a department must answer: notify escalates a missed deadline (`sla.escalated`), the
router keeps it for the department that holds the case, and the department answers in writing. The
answer goes into the case's history and `case.escalation_acknowledged` stops the reminders (P6.2: help
comes in time; P6.3: who answered what, and when)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from common.errors import Forbidden
from common.principal import Principal
from contracts.events.notify import SlaEscalated
from contracts.events.router import EscalationAcknowledged
from services.router.domain.case import Case, HistoryEntry
from services.router.domain.dispatching import emit
from services.router.domain.errors import wrong_state

ACKNOWLEDGED = "escalation_acknowledged"  # the history action of an answer


class Escalation(BaseModel):
    """An escalation waiting for its department's answer."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    escalation_event_id: str
    case_id: str
    department: str
    district: str
    tier: str
    target: str
    clock: str
    due_at: datetime
    sla_class: str
    escalated_at: datetime
    rule_id: str | None = None
    provisions: tuple[str, ...] = ()
    recipient: str | None = None


def escalation_of(event: SlaEscalated, case: Case) -> Escalation | None:
    """The escalation the department must answer: the event's department, or for the citizen's clock the
    case's current lead. None when it names no department and the case has no lead (in arbitration: the
    coordinator's, not a department's, to answer) or the case already holds its answer (a redelivery)."""
    event_id = str(event.event_id)
    lead = case.lead_task()
    department = event.department or (lead.department if lead else None)
    if department is None or answered(case, event_id):
        return None
    district = event.district
    if lead is not None and event.department is None:
        district = lead.district
    return Escalation(
        escalation_event_id=event_id,
        case_id=event.case_id,
        department=department,
        district=district,
        tier=event.tier,
        target=event.target,
        clock=event.clock,
        due_at=event.due_at,
        sla_class=event.sla_class,
        escalated_at=event.occurred_at,
        rule_id=event.rule_id,
        provisions=event.provisions,
        recipient=event.recipient,
    )


def answered(case: Case, escalation_event_id: str) -> bool:
    return any(h.action == ACKNOWLEDGED and h.event_id == escalation_event_id for h in case.history)


def may_answer(escalation: Escalation, worker: Principal) -> None:
    """Only a worker of the escalated department in its district answers it. Raises Forbidden."""
    if worker.department != escalation.department or worker.district != escalation.district:
        raise Forbidden(
            "此督办不属于本部门本区县",
            "this escalation is addressed to another department or district",
            field="escalation_event_id",
        )


def acknowledge(case: Case, escalation: Escalation, worker: Principal, answer: str, now: datetime) -> None:
    """The department's written answer: kept in the history, published as `case.escalation_acknowledged`.
    A second answer to the same escalation is refused."""
    may_answer(escalation, worker)
    if answered(case, escalation.escalation_event_id):
        raise wrong_state(
            "该督办已答复，不能重复答复", "this escalation was already answered", field="escalation_event_id"
        )
    case.history.append(
        HistoryEntry(
            at=now,
            actor=worker.sub,
            action=ACKNOWLEDGED,
            department=escalation.department,
            reason=f"{escalation.tier}:{escalation.target}",
            note=answer,
            event_id=escalation.escalation_event_id,
        )
    )
    emit(
        case,
        EscalationAcknowledged(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=worker.sub,
            department=escalation.department,
            district=escalation.district,
            escalation_event_id=escalation.escalation_event_id,
            answer=answer,
        ),
    )
