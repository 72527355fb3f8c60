"""The caller-facing status of a case, projected from downstream events (pure; P6.2).

Input: the intake facts and every event seen for the case (router lifecycle, relief grants, notify SLA
events, the hotline's own case events) as plain dicts. Unknown event types are kept in the history as a
generic update and never break the projection: other services extend their contracts independently.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from contracts.codes import departments, districts

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
# Fields other services may add to carry the resolution deadline (tolerated extension points).
_DUE_FIELDS = ("expected_resolution_at", "resolution_due_at", "due_at")


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
    warm_transfers: list[dict[str, Any]] = []
    satisfaction: str | None = None
    reopened_times: int = 0
    history: list[StatusNote] = []
    events_seen: int = 0

    @property
    def open311_status(self) -> Literal["open", "closed"]:
        return "closed" if self.status in OPEN311_CLOSED else "open"


def agency_of(department: str, district: str) -> Agency:
    dept = departments().get(department)
    dist = districts().get(district)
    zh = f"{dist.name_zh if dist else district}{dept.name_zh if dept else department}部门"
    en = f"{dept.name_en if dept else department}, {dist.name_en if dist else district}"
    return Agency(department=department, district=district, name_zh=zh, name_en=en)


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


def _lead(state: CaseStatus, event: dict[str, Any]) -> Agency | None:
    """The lead assignment of a dispatch-like event; its task deadline is the expected time until
    notify's citizen resolution clock says otherwise."""
    lead = event.get("lead")
    if not (isinstance(lead, dict) and lead.get("department") and lead.get("district")):
        return None
    if (due := _time(lead.get("due_at"))) and state.expected_source != "sla":
        state.expected_at, state.expected_source = due, "dispatch"
    return agency_of(str(lead["department"]), str(lead["district"]))


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _sort_key(event: dict[str, Any]) -> tuple[datetime, int]:
    return (_time(event.get("occurred_at")) or _EPOCH, int(event.get("_arrival", 0)))


def project_status(case_id: str, *, received_at: datetime, emergency: bool, events: list[dict[str, Any]]) -> CaseStatus:
    """Fold the case's events, in the order they happened, into its caller-facing status."""
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
    for event in sorted(events, key=_sort_key):
        _apply(state, case_id, event)
    state.events_seen = len(events)
    state.label_zh, state.label_en = LABELS[state.status]
    state.open = state.status not in CLOSED_STATUSES
    return state


def _note(state: CaseStatus, at: datetime, kind: str, zh: str, en: str) -> None:
    state.history.append(StatusNote(at=at, type=kind, text_zh=zh, text_en=en))


def _apply(state: CaseStatus, case_id: str, event: dict[str, Any]) -> None:  # noqa: C901 - one branch per type
    kind = str(event.get("type", "unknown"))
    at = _time(event.get("occurred_at")) or state.updated_at
    state.updated_at = max(state.updated_at, at)
    if (
        kind.startswith("case.")
        and state.expected_source != "sla"
        and (due := next((_time(event.get(f)) for f in _DUE_FIELDS if event.get(f)), None))
    ):
        state.expected_at, state.expected_source = due, "dispatch"
    if kind == "case.dispatched":
        state.agency = _lead(state, event) or state.agency
        if state.status in ("received", "redispatching", "reopened"):
            state.status = "dispatched"
        name = state.agency.name_zh if state.agency else ""
        _note(state, at, kind, f"已派至{name}", f"dispatched to {state.agency.name_en if state.agency else '?'}")
    elif kind in ("case.reassigned", "case.arbitration_settled"):
        state.agency = _lead(state, event) or state.agency
        state.status = "dispatched"
        _note(
            state,
            at,
            kind,
            f"改派至{state.agency.name_zh if state.agency else ''}",
            f"reassigned to {state.agency.name_en if state.agency else '?'}",
        )
    elif kind == "case.signed_for":
        if event.get("role", "lead") == "lead" and state.status in ("dispatched", "redispatching", "received"):
            state.status = "signed_for"
        _note(state, at, kind, "承办部门已签收", "signed for by the department")
    elif kind == "case.progress":
        if state.status in ("received", "dispatched", "signed_for", "reopened"):
            state.status = "in_progress"
        _note(state, at, kind, "承办部门正在办理", "the department is working on it")
    elif kind == "case.returned":
        if event.get("role", "lead") == "lead":
            state.status = "redispatching"
        _note(state, at, kind, "案件退回，正在重新派单", "returned; being re-dispatched")
    elif kind in ("case.co_handling_requested", "case.co_handler_closed", "case.arbitration_requested"):
        _note(state, at, kind, "部门协同办理中", "departments are coordinating")
    elif kind == "case.resolved":
        state.status = "resolved"
        _note(state, at, kind, "承办部门已办结", "resolved by the department")
    elif kind == "case.closed":
        state.status = "closed"
        _note(state, at, kind, "案件已关闭", "closed")
    elif kind == "case.merged":
        into = str(event.get("into_case_id", ""))
        if event.get("case_id") == case_id and into != case_id:
            state.status, state.merged_into = "merged", into
            _note(state, at, kind, f"已并入案件 {into}", f"merged into case {into}")
        elif into == case_id and (child := event.get("case_id")) and child not in state.children:
            state.children.append(str(child))
            _note(state, at, kind, f"案件 {child} 已并入本案", f"case {child} merged into this case")
    elif kind.startswith("grant."):
        _apply_grant(state, at, kind, event)
    elif kind.startswith("sla."):
        due = _time(event.get("due_at"))
        if event.get("clock") == "citizen" and event.get("target") == "resolution" and due:
            state.expected_at, state.expected_source = due, "sla"
    elif kind == "hotline.follow_up_attached":
        state.follow_ups += 1
        _note(state, at, kind, "来电人再次来电，已并入本案", "the caller called again; added to this case")
    elif kind == "hotline.warm_transfer_recorded":
        transfer = event.get("transfer") or {}
        state.warm_transfers.append({"to": transfer.get("to"), "at": transfer.get("at")})
        _note(state, at, kind, f"已转接{transfer.get('to')}", f"warm transfer to {transfer.get('to')}")
    elif kind == "hotline.callback_recorded":
        state.satisfaction = str(event.get("satisfaction"))
        zh, en = SATISFACTION_LABELS.get(state.satisfaction, (state.satisfaction, state.satisfaction))
        _note(state, at, kind, f"回访：{zh}", f"callback: {en}")
    elif kind == "hotline.case_reopened":
        state.status = "reopened"
        state.reopened_times += 1
        _note(state, at, kind, "回访不满意，案件已重启", "reopened after a dissatisfied callback")
    else:
        _note(state, at, kind, "案件有更新", "case updated")


def _apply_grant(state: CaseStatus, at: datetime, kind: str, event: dict[str, Any]) -> None:
    amount = event.get("amount_yuan")
    texts = {
        "grant.proposed": ("临时救助已提出", "temporary assistance proposed"),
        "grant.approved": (f"临时救助已批准（{amount}元）", f"temporary assistance approved ({amount} yuan)"),
        "grant.paid": (f"救助金已发放（{amount}元）", f"assistance paid ({amount} yuan)"),
        "grant.rejected": ("临时救助未获批准", "temporary assistance not approved"),
        "grant.stopped": ("救助已停止发放", "assistance stopped"),
    }
    zh, en = texts.get(kind, ("救助有更新", "assistance updated"))
    if kind in ("grant.approved", "grant.paid") and state.status in ("received", "dispatched", "signed_for"):
        state.status = "in_progress"
    _note(state, at, kind, zh, en)
