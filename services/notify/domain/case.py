"""A case as notify sees it: the citizen clock, one department clock per assignment, payment clocks.

`apply(state, event, policy)` folds one router, hotline or relief event into the state; it is pure, so a
redelivered event (same id, or the router republishing the same step with a new id) changes nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts.events.hotline import CallbackRecorded, CaseReopened, HelpRequested
from contracts.events.relief import GrantApproved, GrantPaid, GrantRejected, GrantStopped
from contracts.events.router import (
    ArbitrationRequested,
    ArbitrationSettled,
    Assignment,
    CaseClosed,
    CaseDispatched,
    CaseProgressRecorded,
    CaseReassigned,
    CaseResolved,
    CaseReturned,
    CaseSignedFor,
    CasesMerged,
    CoHandlerTaskClosed,
    CoHandlingRequested,
    EscalationAcknowledged,
    LeadResolved,
)
from services.notify.domain.clocks import Clock, TimerSpec, clock_timers, new_target, start_clock
from services.notify.domain.policy import SlaPolicy
from services.notify.domain.workdays import WorkCalendar

Status = Literal["open", "resolved", "closed", "merged"]
Stage = Literal[
    "awaiting_dispatch",
    "dispatched",
    "signed_for",
    "returned",
    "arbitration",
    "awaiting_co_handlers",
    "resolved",
    "closed",
    "merged",
]
SATISFIED = ("satisfied", "basically_satisfied")
SUMMARY_CHARS = 200  # the start of the caller's description the coordinator's lists show (as the router keeps)


class ClockDecision(BaseModel):
    """A decision about the case's clocks: when, who or which rule, and on what facts (P6.3)."""

    model_config = ConfigDict(extra="ignore")

    at: datetime
    by: str
    rule_id: str
    what: str
    facts: dict[str, Any] = {}


class Escalation(BaseModel):
    """The `sla.escalated` event a department answers, as notify recorded it when it fired."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: str
    clock_key: str | None = None
    target: str | None = None
    tier: str | None = None
    due_at: datetime | None = None


class EscalationAnswer(BaseModel):
    """A department's written answer to an escalation (督办回复); its target climbs the ladder no further."""

    model_config = ConfigDict(extra="ignore")

    escalation_event_id: str
    answer: str
    by: str
    department: str | None = None
    at: datetime
    clock_key: str | None = None  # None: the escalation answered is not one notify recorded
    target: str | None = None
    tier: str | None = None
    due_at: datetime | None = None


class CaseState(BaseModel):
    model_config = ConfigDict(extra="ignore")

    case_id: str
    district: str | None = None
    sla_class: str | None = None
    sla_class_requested: str | None = None
    emergency: bool = False
    status: Status = "open"
    stage: Stage = "awaiting_dispatch"
    lead_department: str | None = None
    hops: list[int] = []
    round: int = 1  # resolution round: a reopened case starts the next one
    returns: int = 0
    received_at: datetime | None = None
    origin: str = "call"  # "proactive": opened by a discovery rule without a call (P2.3)
    needs: list[str] = []  # service codes, as the router dispatched them (or as the call named them)
    summary: str = ""  # the start of the caller's description, for the coordinator's lists
    citizen: Clock | None = None
    assignments: list[Clock] = []
    payments: list[Clock] = []
    outcome: str | None = None
    satisfaction: str | None = None
    satisfaction_at: datetime | None = None
    answers: list[EscalationAnswer] = []  # departments' answers to escalations, first per escalation
    merged_into: str | None = None
    texts: list[str] = []  # natural keys of the caller texts this case calls for
    decisions: list[ClockDecision] = []

    def open_assignment(self, department: str | None, role: str | None = None) -> Clock | None:
        for clock in reversed(self.assignments):
            if clock.open and clock.department == department and (role is None or clock.role == role):
                return clock
        return None

    def assignment_at(self, department: str | None, at: datetime, role: str | None = None) -> Clock | None:
        """The department's assignment that was running at `at` (events of one case may arrive out of order
        across topics, e.g. a sign-for read after the resolution)."""
        for clock in reversed(self.assignments):
            if (
                clock.department == department
                and (role is None or clock.role == role)
                and clock.started_at <= at
                and (clock.ended_at is None or clock.ended_at >= at)
            ):
                return clock
        return self.open_assignment(department, role)

    def awaiting_co_handlers(self) -> list[str]:
        """The co-handling departments still working after the lead resolved its part (else none)."""
        if self.stage != "awaiting_co_handlers":
            return []
        return [c.department for c in self.assignments if c.open and c.role == "co_handler" and c.department]

    def responsible_department(self) -> str | None:
        """Who the case waits on now: the lead, or, once the lead resolved its part, the first co-handler
        still working (a late case is theirs, not the lead's)."""
        awaiting = self.awaiting_co_handlers()
        return awaiting[0] if awaiting else self.lead_department

    def open_lead(self) -> Clock | None:
        return next((c for c in reversed(self.assignments) if c.open and c.role == "lead"), None)

    def all_clocks(self) -> list[Clock]:
        return ([self.citizen] if self.citizen else []) + self.assignments + self.payments

    def answered_targets(self, clock: Clock) -> set[str]:
        """The clock's targets whose current deadline's escalation a department answered."""
        out = set()
        for answer in self.answers:
            state = clock.targets.get(answer.target or "")
            # An answer to an earlier round's deadline does not stop the ladder of the current one.
            current = state is not None and (answer.due_at is None or answer.due_at >= state.span_start)
            if answer.clock_key == clock.key and current:
                out.add(answer.target or "")
        return out

    def decide(self, at: datetime, by: str, rule_id: str, what: str, **facts: Any) -> None:
        """Record a decision with who or which rule made it and on what facts (P6.3)."""
        self.decisions.append(ClockDecision(at=at, by=by, rule_id=rule_id, what=what, facts=facts))


def _calendar(state: CaseState, policy: SlaPolicy) -> WorkCalendar | None:
    """The working-day calendar the case's day targets count; an emergency runs round the clock (P2.2, P4.3)."""
    return None if state.emergency else policy.calendar


def _new_assignment(state: CaseState, policy: SlaPolicy, assignment: Assignment, at: datetime) -> Clock:
    sla_class = policy.class_named(state.sla_class or "", at)
    n = sum(1 for c in state.assignments if c.department == assignment.department) + 1
    targets = None if assignment.role == "lead" else ("sign_for", "resolution")
    clock = start_clock(
        key=f"dept:{assignment.department}:{n}",
        kind="department",
        sla_class=sla_class,
        start=at,
        tz=policy.tz,
        district=assignment.district,
        department=assignment.department,
        role=assignment.role,
        targets=targets,
        work_calendar=_calendar(state, policy),
    )
    clock.targets.pop("payment", None)
    state.assignments.append(clock)
    return clock


def _set_lead(state: CaseState, policy: SlaPolicy, lead: Assignment, at: datetime, reason: str) -> None:
    current = state.open_lead()
    if current is not None and current.department == lead.department:
        return
    if current is not None:
        current.end(at, reason)
    _new_assignment(state, policy, lead, at)
    state.lead_department = lead.department
    state.stage = "dispatched"


def _dispatched(state: CaseState, e: CaseDispatched, policy: SlaPolicy) -> None:
    if e.hop in state.hops:
        return  # the router republished a dispatch it already made
    state.hops.append(e.hop)
    at = e.occurred_at
    choice = policy.choose(e.sla_class, at)
    state.district = state.district or e.district
    state.emergency = state.emergency or e.emergency
    if state.citizen is None or state.sla_class != choice.sla_class.name:
        state.decide(
            at,
            "notify",
            choice.sla_class.rule_id,
            "sla_class",
            requested=e.sla_class,
            applied=choice.sla_class.name,
            fell_back=choice.fell_back,
            policy_version=choice.policy_version,
            provisions=list(choice.sla_class.provisions),
            hop=e.hop,
        )
    state.sla_class, state.sla_class_requested = choice.sla_class.name, e.sla_class
    if state.citizen is None:
        # The caller's time starts at the call when notify has seen it, else at the first dispatch.
        start = min(at, state.received_at) if state.received_at else at
        state.citizen = start_clock(
            key="citizen",
            kind="citizen",
            sla_class=choice.sla_class,
            start=start,
            tz=policy.tz,
            district=e.district,
            work_calendar=_calendar(state, policy),
        )
        state.citizen.targets.pop("payment", None)
        state.texts.append(f"{state.case_id}|caller_dispatched")
    elif state.citizen.sla_class != choice.sla_class.name:
        # A re-dispatch under another class re-targets the citizen clock from its original start.
        for name, rule in choice.sla_class.targets.items():
            old = state.citizen.targets.get(name)
            if name != "payment" and (old is None or old.met_at is None):
                span_start = old.span_start if old else state.citizen.started_at
                state.citizen.targets[name] = new_target(
                    rule, span_start, policy.tz, _calendar(state, policy), choice.sla_class.pause.max_total
                )
        state.citizen.sla_class = choice.sla_class.name
        state.citizen.pause_max_total_s = choice.sla_class.pause.max_total.total_seconds()
    if getattr(e, "cause", "") == "reopened":
        _reopen(state, policy, at, e.decision.decided_by, "redispatched after reopening")
    _set_lead(state, policy, e.lead, at, "redispatched")
    for co in e.co_handlers:
        if state.open_assignment(co.department, "co_handler") is None:
            _new_assignment(state, policy, co, at)


def _signed(state: CaseState, e: CaseSignedFor) -> None:
    at = e.occurred_at
    clock = state.assignment_at(e.department, at, e.role) or state.assignment_at(e.department, at)
    if clock is not None:
        clock.meet("sign_for", e.occurred_at)
    if (clock is None or clock.role == "lead") and state.citizen is not None:
        state.citizen.meet("sign_for", e.occurred_at)
    if clock is not None and clock.role == "lead" and state.stage == "dispatched":
        state.stage = "signed_for"


def _progress(state: CaseState, e: CaseProgressRecorded) -> None:
    if not e.first_contact:
        return
    clock = state.assignment_at(e.department, e.occurred_at)
    if clock is not None:
        clock.meet("first_contact", e.occurred_at)
    if state.citizen is not None:
        state.citizen.meet("first_contact", e.occurred_at)


def _returned(state: CaseState, e: CaseReturned) -> None:
    role = getattr(e, "role", "lead")
    clock = state.open_assignment(e.department, role) or state.open_assignment(e.department)
    if clock is None:
        return
    clock.end(e.occurred_at, f"returned:{e.reason}")
    if clock.role == "lead":
        state.returns = max(state.returns + 1, e.returns_so_far)
        state.lead_department = None
        state.stage = "arbitration" if getattr(e, "next_step", "") == "arbitration" else "returned"


def _resolved(state: CaseState, e: CaseResolved) -> None:
    if state.status != "open":
        return
    at = e.occurred_at
    lead = state.open_lead()
    if lead is not None:
        lead.meet("resolution", at)
        lead.end(at, "resolved")
    if state.citizen is not None:
        state.citizen.meet("resolution", at)
        state.citizen.end(at, "resolved")
    state.status, state.stage, state.outcome = "resolved", "resolved", e.outcome
    state.texts.append(f"{state.case_id}|caller_resolved|{state.round}")


def _lead_resolved(state: CaseState, e: LeadResolved) -> None:
    """The lead's part is done (its resolution clock stops) while co-handlers work; the caller's clock
    runs on until the case resolves."""
    if state.status != "open":
        return
    at = e.occurred_at
    lead = state.open_assignment(e.department, "lead")
    if lead is not None:
        lead.meet("resolution", at)
        lead.end(at, "lead_resolved")
    if any(state.open_assignment(a.department, "co_handler") for a in e.awaiting):
        state.stage = "awaiting_co_handlers"


def _reopen(state: CaseState, policy: SlaPolicy, at: datetime, by: str, reason: str) -> None:
    """Start the next resolution round; the citizen clock runs again with a fresh resolution target.

    The hotline's CaseReopened and the router's re-dispatch (cause "reopened") describe the same step and
    may arrive in either order: whichever comes first reopens, the other finds the case open already."""
    if state.status != "resolved" or state.citizen is None:
        return
    state.round += 1
    state.status, state.stage, state.satisfaction, state.lead_department = "open", "awaiting_dispatch", None, None
    sla_class = policy.class_named(state.sla_class or "", at)
    state.citizen.ended_at, state.citizen.end_reason = None, None
    state.citizen.targets["resolution"] = new_target(
        sla_class.targets["resolution"], at, policy.tz, _calendar(state, policy), sla_class.pause.max_total
    )
    state.decide(at, by, sla_class.targets["resolution"].rule_id, "reopened", reason=reason, round=state.round)


def _close_all(state: CaseState, at: datetime, reason: str) -> None:
    for clock in state.all_clocks():
        if clock.kind == "department" or clock.key == "citizen":
            clock.end(at, reason)


def _grant(state: CaseState, e: Any, policy: SlaPolicy) -> None:
    key = f"payment:{e.grant_id}"
    clock = next((c for c in state.payments if c.key == key), None)
    if isinstance(e, GrantApproved):
        if clock is not None:
            return
        sla_class = policy.payment_class(e.occurred_at)
        clock = start_clock(
            key=key,
            kind="citizen",
            sla_class=sla_class,
            start=e.occurred_at,
            tz=policy.tz,
            district=e.district,
            department="civil_affairs",
            targets=("payment",),
        )
        # P2.1: paid in the month of approval, whenever the approval event is processed.
        approved = datetime.combine(e.approved_on, datetime.min.time(), policy.tz).replace(hour=12)
        clock.targets["payment"].base_due = sla_class.targets["payment"].due(approved, policy.tz)
        state.payments.append(clock)
        state.district = state.district or e.district
        state.decide(
            e.occurred_at,
            e.actor,
            sla_class.targets["payment"].rule_id,
            "payment_clock",
            grant_id=e.grant_id,
            rule=e.rule_id,
            approved_on=e.approved_on.isoformat(),
        )
    elif clock is not None and isinstance(e, GrantPaid):
        clock.meet("payment", e.occurred_at)
        clock.end(e.occurred_at, "paid")
    elif clock is not None:
        clock.end(e.occurred_at, "stopped" if isinstance(e, GrantStopped) else "rejected")


def _acknowledged(state: CaseState, e: EscalationAcknowledged, escalation: Escalation | None) -> None:
    if any(a.escalation_event_id == e.escalation_event_id for a in state.answers):
        return  # answered already (a redelivery, or the router republishing the step)
    known = escalation if escalation is not None and escalation.event_id == e.escalation_event_id else None
    state.answers.append(
        EscalationAnswer(
            escalation_event_id=e.escalation_event_id,
            answer=e.answer,
            by=e.actor,
            department=e.department,
            at=e.occurred_at,
            clock_key=known.clock_key if known else None,
            target=known.target if known else None,
            tier=known.tier if known else None,
            due_at=known.due_at if known else None,
        )
    )
    clock = next((c for c in state.all_clocks() if known and c.key == known.clock_key), None)
    rule = clock.targets.get(known.target or "") if clock is not None and known else None
    state.decide(
        e.occurred_at,
        e.actor,
        rule.rule_id if rule else "SLA-ESCALATION",
        "escalation_answered",
        escalation_event_id=e.escalation_event_id,
        department=e.department,
        clock_key=known.clock_key if known else None,
        target=known.target if known else None,
        tier=known.tier if known else None,
        reminders_stopped=rule is not None,
    )


def apply(state: CaseState | None, event: Any, policy: SlaPolicy, *, escalation: Escalation | None = None) -> CaseState:
    """Fold one event into the case; the same step applied twice leaves the case as it was. An
    `EscalationAcknowledged` comes with the escalation it answers, as notify recorded it (`escalation`)."""
    state = CaseState(case_id=event.case_id) if state is None else state.model_copy(deep=True)
    at = event.occurred_at
    match event:
        case HelpRequested():
            state.received_at = state.received_at or event.received_at
            state.origin = event.origin
            state.district = state.district or event.place.district
            state.emergency = state.emergency or event.emergency
            state.needs = state.needs or list(event.needs)
            state.summary = state.summary or event.description[:SUMMARY_CHARS]
        case CaseDispatched():
            state.needs = list(event.needs) or state.needs
            _dispatched(state, event, policy)
        case CaseSignedFor():
            _signed(state, event)
        case CaseProgressRecorded():
            _progress(state, event)
        case CaseReturned():
            _returned(state, event)
        case CoHandlingRequested():
            if state.open_assignment(event.requested_department, "co_handler") is None and state.status == "open":
                district = event.district or state.district or ""
                _new_assignment(
                    state,
                    policy,
                    Assignment(department=event.requested_department, district=district, role="co_handler"),
                    at,
                )
        case CoHandlerTaskClosed():
            clock = state.open_assignment(event.department, "co_handler")
            if clock is not None:
                clock.meet("resolution", at)
                clock.end(at, f"co_handler_{event.outcome}")
            if state.stage == "awaiting_co_handlers" and not state.awaiting_co_handlers():
                state.stage = "signed_for"  # every co-handler is done: case.resolved follows
        case LeadResolved():
            _lead_resolved(state, event)
        case CaseResolved():
            _resolved(state, event)
        case CaseReassigned() | ArbitrationSettled():
            if state.status == "open":
                _set_lead(state, policy, event.lead, at, "reassigned")
        case ArbitrationRequested():
            if state.status == "open":
                state.stage = "arbitration"
        case CasesMerged():
            if state.status in ("open", "resolved"):
                _close_all(state, at, "merged")
                state.status, state.stage, state.merged_into = "merged", "merged", event.into_case_id
        case CaseClosed():
            if state.status != "closed":
                _close_all(state, at, "closed")
                state.status, state.stage = "closed", "closed"
        case CallbackRecorded():
            state.satisfaction = event.satisfaction
            state.satisfaction_at = at
        case EscalationAcknowledged():
            _acknowledged(state, event, escalation)
        case CaseReopened():
            _reopen(state, policy, at, event.operator_id, event.reason)
        case GrantApproved() | GrantPaid() | GrantStopped() | GrantRejected():
            _grant(state, event, policy)
    return state


def timers(state: CaseState, policy: SlaPolicy) -> list[TimerSpec]:
    """Every pending warning, breach and escalation of the case's open clocks."""
    out: list[TimerSpec] = []
    for clock in state.all_clocks():
        when = clock.started_at
        payment = clock.key.startswith("payment:")
        sla_class = policy.payment_class(when) if payment else policy.class_named(clock.sla_class, when)
        if state.status == "open" or payment:
            last_lead = next((c.department for c in reversed(state.assignments) if c.role == "lead"), None)
            lead = clock.department if payment else (state.responsible_department() or last_lead)
            out += clock_timers(
                state.case_id,
                clock,
                sla_class,
                policy.warning_share(when),
                escalate=clock.kind == "citizen",
                lead_department=lead,
                answered=state.answered_targets(clock),
            )
    return sorted(out, key=lambda t: t.at)
