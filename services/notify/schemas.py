"""The coordinator API's response bodies (and the pause request). Every route declares one of these;
none is a storage document with fields removed: each is built field by field from the case's state or
from a typed record (`documents.py`)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.notify.documents import Attempt, DeliveryStatus, SlaEventRecord
from services.notify.domain.case import ClockDecision, EscalationAnswer
from services.notify.domain.clocks import ClockKind, PauseRecord
from services.notify.domain.policy import SlaClass


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["waiting_for_caller", "caller_unreachable", "caller_requested_delay"] = Field(
        description=(
            "waiting_for_caller 等待来电人 | caller_unreachable 联系不上 | caller_requested_delay 来电人要求延后"
        )
    )
    note: str = Field(default="", max_length=1000)


class CaseItem(BaseModel):
    """One row of a view; `late_s` > 0 is how late the earliest unmet target is, < 0 the time left."""

    case_id: str
    district: str | None
    # Who the case waits on: the lead, a co-handler once the lead resolved its part (`awaiting_co_handlers`),
    # or the last lead when nobody leads (`assigned` false).
    department: str | None
    assigned: bool
    sla_class: str | None
    status: str | None
    stage: str | None
    emergency: bool
    paused: bool
    due_at: datetime | None
    next_due_at: datetime | None
    late_s: int | None
    returns: int
    round: int
    needs: list[str] = Field(description="service codes of the case's needs (names: /api/v1/reference)")
    summary: str = Field(description="the start of the caller's description")
    awaiting_co_handlers: list[str] = Field(
        default=[], description="the lead resolved its part; these co-handling departments are still working"
    )


class ViewCounts(BaseModel):
    """How many cases each of the coordinator's views holds, under the same filters as `/cases`."""

    overdue: int
    at_risk: int
    unassigned: int
    returned: int
    arbitration: int
    open: int


class TargetView(BaseModel):
    rule_id: str
    provisions: tuple[str, ...]
    due_at: datetime
    met_at: datetime | None
    on_time: bool | None
    working_days: bool = Field(default=False, description="counted in working days of the holiday calendar")
    weekdays_only: list[int] = Field(default=[], description="years the calendar did not hold: Mon-Fri only")
    escalation_answered: bool = Field(default=False, description="a department answered its escalation")


class ClockView(BaseModel):
    key: str
    kind: ClockKind
    department: str | None
    district: str
    role: Literal["lead", "co_handler"] | None
    sla_class: str
    started_at: datetime
    ended_at: datetime | None
    end_reason: str | None
    paused: bool
    pauses: list[PauseRecord]
    targets: dict[str, TargetView]


class CaseNotification(BaseModel):
    """A delivery record as the case detail lists it (`attempts`: how many so far)."""

    key: str
    kind: str
    recipient: str
    channel: str
    status: DeliveryStatus
    attempts: int
    text_zh: str


class SlaEventView(SlaEventRecord):
    """An SLA event notify fired for the case, as recorded; an escalation with the department's answer."""

    answer: EscalationAnswer | None = None


class CaseDetail(CaseItem):
    clocks: list[ClockView]
    decisions: list[ClockDecision]
    sla_events: list[SlaEventView]
    notifications: list[CaseNotification]
    answers: list[EscalationAnswer] = Field(default=[], description="departments' answers to escalations")


class RateCounts(BaseModel):
    res_on_time: int
    res_decided: int  # met, plus still open past the deadline
    res_overdue: int
    callbacks: int
    satisfied: int
    backlog: int
    sign_on_time: int
    sign_decided: int  # signed, ended unsigned after the deadline, or still unsigned past it
    sign_overdue: int
    assignments: int


class _Rates(BaseModel):
    response_rate: float | None
    on_time_resolution_rate: float | None
    satisfaction_rate: float | None
    backlog: int
    counts: RateCounts


class DepartmentRates(_Rates):
    department: str


class DistrictRates(_Rates):
    district: str


class ClockChange(BaseModel):
    """The answer to a pause or a resume: the case's resolution deadline now."""

    case_id: str
    paused: bool
    due_at: datetime | None
    message_zh: str
    message_en: str


class NotificationView(BaseModel):
    key: str
    case_id: str
    kind: str
    recipient: str
    channel: str
    status: DeliveryStatus
    attempts: list[Attempt]
    created_at: datetime
    sent_at: datetime | None


class SlaPolicyView(BaseModel):
    version: str
    effective_from: datetime
    warning_share: float
    fallback_class: str
    classes: dict[str, SlaClass]


class CalendarDay(BaseModel):
    date: date
    kind: Literal["holiday", "workday"]
    name_zh: str
    name_en: str


class CalendarYearView(BaseModel):
    """One year of the working-day calendar: days off and make-up workdays (调休), and where it came from."""

    year: int
    source: str
    holidays: int
    workdays: int
    days: list[CalendarDay]


class CalendarView(BaseModel):
    timezone: str
    years: list[CalendarYearView]
    missing: list[int] = Field(
        default_factory=list,
        description="years whose schedule the calendar should hold by now and does not (`calendars.missing_years`)",
    )
    note_zh: str
    note_en: str


class ReportRow(BaseModel):
    """One period and group of a report: volumes and the three rates (三率), with their counts."""

    period: str = Field(description="day YYYY-MM-DD, week YYYY-Www (ISO), or month YYYY-MM")
    period_start: date
    group: str | None = Field(description="district or department code; null: not dispatched")
    received: int
    dispatched: int
    resolved: int
    response_rate: float | None
    on_time_resolution_rate: float | None
    satisfaction_rate: float | None
    sign_on_time: int
    sign_decided: int
    res_on_time: int
    res_decided: int
    satisfied: int
    callbacks: int


class Report(BaseModel):
    first: date
    last: date
    by: Literal["day", "week", "month"]
    group: Literal["district", "department"]
    district: str | None
    origin: Literal["call", "proactive"] | None = Field(
        default=None, description="calls or proactive cases only (P2.3); none: all"
    )
    rows: list[ReportRow]
    totals: list[ReportRow] = Field(description="one row per period, all groups together")


class EscalationNotice(BaseModel):
    """A printable escalation notice (督办单) for one `sla.escalated` event of a case."""

    notice_no: str
    case_id: str
    summary: str
    needs: list[str]
    district: str | None
    district_zh: str
    department: str | None
    department_zh: str
    department_en: str
    target: str
    target_zh: str
    rule_id: str | None
    provisions: list[str]
    due_at: datetime
    tier: str
    tier_zh: str
    escalated_at: datetime
    overdue_s: int = Field(description="seconds past the deadline at the escalation")
    still_unmet: bool
    overdue_now_s: int | None = Field(description="seconds past the deadline now, while still unmet")
    asked_zh: str
    asked_en: str
    answer: EscalationAnswer | None
    issued_at: datetime
