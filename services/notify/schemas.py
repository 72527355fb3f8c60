"""The coordinator API's response bodies (and the pause request). Every route declares one of these;
none is a storage document with fields removed: each is built field by field from the case's state or
from a typed record (`documents.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.notify.documents import Attempt, DeliveryStatus, SlaEventRecord
from services.notify.domain.case import ClockDecision
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
    department: str | None  # the lead now, or the last lead when nobody leads (`assigned` false)
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
    """An SLA event notify fired for the case, as recorded."""


class CaseDetail(CaseItem):
    clocks: list[ClockView]
    decisions: list[ClockDecision]
    sla_events: list[SlaEventView]
    notifications: list[CaseNotification]


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
