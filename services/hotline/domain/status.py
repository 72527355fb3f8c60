"""The caller-facing status of a case, projected from downstream events (pure; P6.2).

Input: the intake facts and every event seen for the case, typed: the router's lifecycle, relief's grants,
notify's SLA events and the hotline's own case events as their contract classes, and `OtherUpdate` for a
type this version does not know. Those are kept in the history as a generic update and never break the
projection: other services extend their contracts independently.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from contracts.codes import departments, districts
from contracts.events.base import Event
from contracts.events.hotline import (
    CallbackRecorded,
    CaseReopened,
    FollowUpAttached,
    WarmTransfer,
    WarmTransferRecorded,
)
from contracts.events.notify import SlaBreached, SlaEscalated, SlaWarningRaised
from contracts.events.relief import (
    GrantApproved,
    GrantCancelled,
    GrantPaid,
    GrantProposed,
    GrantRejected,
    GrantStopped,
)
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
    LeadResolved,
)

StatusCode = Literal[
    "received",
    "dispatched",
    "redispatching",
    "signed_for",
    "in_progress",
    "resolved",
    "closed",
    "reopened",
    "merged",
]
LABELS: dict[str, tuple[str, str]] = {
    "received": ("已受理", "received"),
    "dispatched": ("已派单", "dispatched"),
    "redispatching": ("重新派单中", "being re-dispatched"),
    "signed_for": ("已签收", "signed for"),
    "in_progress": ("办理中", "in progress"),
    "resolved": ("已办结", "resolved"),
    "closed": ("已关闭", "closed"),
    "reopened": ("已重启", "reopened"),
    "merged": ("已并案", "merged into another case"),
}
# The statuses in which a caller's new call about the same matter belongs to the existing case.
CLOSED_STATUSES = frozenset({"closed", "merged"})
# Open311 has two states; a resolved case is done from the public's point of view until reopened.
OPEN311_CLOSED = frozenset({"resolved", "closed", "merged"})
SATISFACTION_LABELS = {
    "satisfied": ("满意", "satisfied"),
    "basically_satisfied": ("基本满意", "basically satisfied"),
    "dissatisfied": ("不满意", "dissatisfied"),
}
# Fields other services may add to an event type this version does not know, to carry the resolution
# deadline (tolerated extension points).
_DUE_FIELDS = ("expected_resolution_at", "resolution_due_at", "due_at")


def _time(value: Any) -> datetime | None:
    """An aware datetime from an event field (naive values are taken as UTC); None if not a time."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return None


class OtherUpdate(BaseModel):
    """An event of a type this version does not know (its producer added it since): kept, and shown as a
    generic update. Its other fields stay as they came (`model_extra`)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    case_id: str
    event_id: str
    occurred_at: datetime | None = None

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _lenient_time(cls, value: Any) -> datetime | None:
        return _time(value)

    def extra(self, name: str) -> Any:
        return (self.model_extra or {}).get(name)


# What the projection folds: the contract events of the topics the hotline reads, and unknown types.
StatusEvent = Event | OtherUpdate


class Agency(BaseModel):
    model_config = ConfigDict(frozen=True)

    department: str
    district: str
    name_zh: str
    name_en: str


class StatusNote(BaseModel):
    model_config = ConfigDict(frozen=True)

    at: datetime
    type: str
    text_zh: str
    text_en: str


class CaseStatus(BaseModel):
    """What the operator tells the caller: where the case is, who handles it, by when."""

    case_id: str
    status: StatusCode
    label_zh: str
    label_en: str
    open: bool
    emergency: bool
    received_at: datetime
    updated_at: datetime
    agency: Agency | None = None
    expected_at: datetime | None = None
    expected_source: Literal["sla", "dispatch"] | None = None  # notify's citizen clock wins over a task deadline
    merged_into: str | None = None
    children: list[str] = []
    follow_ups: int = 0
    warm_transfers: list[WarmTransfer] = []
    satisfaction: str | None = None
    called_back: bool = False  # the current resolution has had its callback (one per resolution)
    resolved_at: datetime | None = None  # when the current resolution came (its callback is due from then)
    reopened_times: int = 0
    history: list[StatusNote] = []
    events_seen: int = 0

    @property
    def awaiting_callback(self) -> bool:
        """Resolved (or closed) and this resolution not called back yet: on the callbacks worklist (P6.2)."""
        return self.status in ("resolved", "closed") and not self.called_back

    @property
    def open311_status(self) -> Literal["open", "closed"]:
        return "closed" if self.status in OPEN311_CLOSED else "open"


def agency_of(department: str, district: str) -> Agency:
    dept = departments().get(department)
    dist = districts().get(district)
    zh = f"{dist.name_zh if dist else district}{dept.name_zh if dept else department}部门"
    en = f"{dept.name_en if dept else department}, {dist.name_en if dist else district}"
    return Agency(department=department, district=district, name_zh=zh, name_en=en)


def _lead(state: CaseStatus, lead: Assignment) -> Agency | None:
    """The lead assignment of a dispatch-like event; its task deadline is the expected time until
    notify's citizen resolution clock says otherwise."""
    if not (lead.department and lead.district):
        return None
    if lead.due_at and state.expected_source != "sla":
        state.expected_at, state.expected_source = lead.due_at, "dispatch"
    return agency_of(lead.department, lead.district)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _occurred(event: StatusEvent) -> datetime | None:
    return event.occurred_at


def project_status(
    case_id: str, *, received_at: datetime, emergency: bool, events: Sequence[StatusEvent]
) -> CaseStatus:
    """Fold the case's events, in the order they happened (ties in the order they arrived), into its
    caller-facing status."""
    state = CaseStatus(
        case_id=case_id,
        status="received",
        label_zh="",
        label_en="",
        open=True,
        emergency=emergency,
        received_at=received_at,
        updated_at=received_at,
        history=[
            StatusNote(
                at=received_at, type="hotline.help_requested", text_zh="热线已受理", text_en="received by the hotline"
            )
        ],
    )
    for event in sorted(events, key=lambda e: _occurred(e) or _EPOCH):  # stable: arrival order within a time
        _apply(state, case_id, event)
    state.events_seen = len(events)
    state.label_zh, state.label_en = LABELS[state.status]
    state.open = state.status not in CLOSED_STATUSES
    return state


def _note(state: CaseStatus, at: datetime, kind: str, zh: str, en: str) -> None:
    state.history.append(StatusNote(at=at, type=kind, text_zh=zh, text_en=en))


def _announced_due(event: StatusEvent) -> datetime | None:
    """A case event's own deadline, which stands as the expected time until notify's citizen clock is
    known: a co-handling request's `due_at`, or a deadline field of a `case.*` type this version does not
    know."""
    if isinstance(event, CoHandlingRequested):
        return event.due_at
    if isinstance(event, OtherUpdate) and event.type.startswith("case."):
        return next((_time(event.extra(f)) for f in _DUE_FIELDS if event.extra(f)), None)
    return None


def _agency_names(state: CaseStatus) -> tuple[str, str]:
    return (state.agency.name_zh, state.agency.name_en) if state.agency else ("", "?")


def _apply(state: CaseStatus, case_id: str, event: StatusEvent) -> None:
    kind = str(getattr(event, "type", "unknown"))  # every concrete contract event has its `type` literal
    at = _occurred(event) or state.updated_at
    state.updated_at = max(state.updated_at, at)
    if state.expected_source != "sla" and (due := _announced_due(event)):
        state.expected_at, state.expected_source = due, "dispatch"
    match event:
        case CaseDispatched():
            state.agency = _lead(state, event.lead) or state.agency
            if state.status in ("received", "redispatching", "reopened"):
                state.status = "dispatched"
            zh, en = _agency_names(state)
            _note(state, at, kind, f"已派至{zh}", f"dispatched to {en}")
        case CaseReassigned() | ArbitrationSettled():
            state.agency = _lead(state, event.lead) or state.agency
            state.status = "dispatched"
            zh, en = _agency_names(state)
            _note(state, at, kind, f"改派至{zh}", f"reassigned to {en}")
        case CaseSignedFor():
            if event.role == "lead" and state.status in ("dispatched", "redispatching", "received"):
                state.status = "signed_for"
            _note(state, at, kind, "承办部门已签收", "signed for by the department")
        case CaseProgressRecorded():
            if state.status in ("received", "dispatched", "signed_for", "reopened"):
                state.status = "in_progress"
            _note(state, at, kind, "承办部门正在办理", "the department is working on it")
        case CaseReturned():
            if event.role == "lead":
                state.status = "redispatching"
            _note(state, at, kind, "案件退回，正在重新派单", "returned; being re-dispatched")
        case CoHandlingRequested() | CoHandlerTaskClosed() | ArbitrationRequested():
            _note(state, at, kind, "部门协同办理中", "departments are coordinating")
        case LeadResolved():
            # The lead's part is done, not the case: co-handlers are still working (P2.3).
            if state.status in ("received", "dispatched", "signed_for", "reopened"):
                state.status = "in_progress"
            _note(
                state,
                at,
                kind,
                "主办部门已办结，协办部门仍在办理",
                "the lead department is done; co-handlers are still working",
            )
        case CaseResolved():
            state.status = "resolved"
            state.called_back = False  # a new resolution (after a reopening) takes its own callback
            state.resolved_at = at
            _note(state, at, kind, "承办部门已办结", "resolved by the department")
        case CaseClosed():
            state.status = "closed"
            state.resolved_at = state.resolved_at or at  # closed without a resolution first: due from now
            _note(state, at, kind, "案件已关闭", "closed")
        case CasesMerged():
            _apply_merge(state, case_id, at, event)
        case SlaWarningRaised() | SlaBreached() | SlaEscalated():
            if event.clock == "citizen" and event.target == "resolution":
                state.expected_at, state.expected_source = event.due_at, "sla"
        case FollowUpAttached():
            state.follow_ups += 1
            _note(state, at, kind, "来电人再次来电，已并入本案", "the caller called again; added to this case")
        case WarmTransferRecorded():
            transfer = event.transfer
            state.warm_transfers.append(transfer)
            _note(state, at, kind, f"已转接{transfer.to}", f"warm transfer to {transfer.to}")
        case CallbackRecorded():
            state.satisfaction = event.satisfaction
            state.called_back = True
            zh, en = SATISFACTION_LABELS[event.satisfaction]
            _note(state, at, kind, f"回访：{zh}", f"callback: {en}")
        case CaseReopened():
            state.status = "reopened"
            state.called_back = False
            state.resolved_at = None
            state.reopened_times += 1
            _note(state, at, kind, "回访不满意，案件已重启", "reopened after a dissatisfied callback")
        case GrantProposed() | GrantApproved() | GrantPaid() | GrantRejected() | GrantStopped():
            _apply_grant(state, at, event)
        case OtherUpdate() if kind.startswith("sla."):
            _apply_other_sla(state, event)
        case GrantCancelled():  # no words of its own for the caller
            _note(state, at, kind, "救助有更新", "assistance updated")
        case OtherUpdate() if kind.startswith("grant."):
            _note(state, at, kind, "救助有更新", "assistance updated")
        case _:
            _note(state, at, kind, "案件有更新", "case updated")


def _apply_merge(state: CaseStatus, case_id: str, at: datetime, event: CasesMerged) -> None:
    """A merge concerns two cases: the child (the event's case) and the case it went into."""
    into, child = event.into_case_id, event.case_id
    if child == case_id and into != case_id:
        state.status, state.merged_into = "merged", into
        _note(state, at, event.type, f"已并入案件 {into}", f"merged into case {into}")
    elif into == case_id and child not in state.children:
        state.children.append(child)
        _note(state, at, event.type, f"案件 {child} 已并入本案", f"case {child} merged into this case")


def _apply_other_sla(state: CaseStatus, event: OtherUpdate) -> None:
    """An SLA event type this version does not know still carries the citizen clock's deadline."""
    due = _time(event.extra("due_at"))
    if event.extra("clock") == "citizen" and event.extra("target") == "resolution" and due:
        state.expected_at, state.expected_source = due, "sla"


def _apply_grant(
    state: CaseStatus, at: datetime, event: GrantProposed | GrantApproved | GrantPaid | GrantRejected | GrantStopped
) -> None:
    match event:
        case GrantProposed():
            zh, en = "临时救助已提出", "temporary assistance proposed"
        case GrantApproved():
            zh, en = (
                f"临时救助已批准（{event.amount_yuan}元）",
                f"temporary assistance approved ({event.amount_yuan} yuan)",
            )
        case GrantPaid():
            zh, en = f"救助金已发放（{event.amount_yuan}元）", f"assistance paid ({event.amount_yuan} yuan)"
        case GrantRejected():
            zh, en = "临时救助未获批准", "temporary assistance not approved"
        case GrantStopped():
            zh, en = "救助已停止发放", "assistance stopped"
    if isinstance(event, GrantApproved | GrantPaid) and state.status in ("received", "dispatched", "signed_for"):
        state.status = "in_progress"
    _note(state, at, event.type, zh, en)
