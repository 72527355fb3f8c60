"""What the care register's HTTP API takes and gives (P2.2, P5.3): enrolment, visits, reassignment, and
the views of entries and visits (no outbox). Bad input is refused field by field (422, zh first)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from contracts.catalogue import service_catalogue
from services.relief.domain.care import CareEntry, CareGroup, CareVisit, VisitMode, VisitOutcome, due_status

ACCOUNT = r"^[A-Za-z0-9_.@:-]{1,64}$"


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Enrol(Body):
    """Put a person on the register: from the low-income registry (`recipient_id`) or a case (`case_id`)."""

    recipient_id: str | None = Field(default=None, min_length=1, max_length=64)
    case_id: str | None = Field(default=None, pattern=r"^CQ-\d{8}-\d{6}$", validate_default=True)
    groups: list[CareGroup] = Field(min_length=1, max_length=9)
    worker: str = Field(pattern=ACCOUNT, description="the responsible worker's account id (P5.3)")
    worker_name: str | None = Field(default=None, max_length=64)
    address: str | None = Field(default=None, max_length=300)
    township: str | None = Field(default=None, max_length=100)

    @field_validator("case_id")
    @classmethod
    def _one_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Exactly one source; the error names `case_id`, the field after `recipient_id` on the form."""
        if "recipient_id" in info.data and bool(info.data["recipient_id"]) == bool(value):
            raise ValueError("请只填写低收入人口编号或案件编号中的一项 | give exactly one of recipient_id and case_id")
        return value


class VisitBody(Body):
    visited_on: date
    mode: VisitMode
    outcome: VisitOutcome
    needs: list[str] = Field(default_factory=list, max_length=10, description="catalogue need codes found")
    note: str = Field(default="", max_length=2000)

    @field_validator("needs")
    @classmethod
    def _catalogue(cls, value: list[str]) -> list[str]:
        codes = service_catalogue().by_code()
        unknown = [n for n in value if n not in codes]
        if unknown:
            raise ValueError(f"未知的服务代码 {unknown} | unknown catalogue needs {unknown}")
        return value


class Reassign(Body):
    worker: str = Field(pattern=ACCOUNT)
    worker_name: str | None = Field(default=None, max_length=64)


class VisitView(BaseModel):
    visit_id: str
    visited_on: date
    worker: str
    worker_shown: str
    mode: VisitMode
    outcome: VisitOutcome
    needs: list[str]
    note: str
    recorded_at: datetime
    case_proposal: str | None = None

    @classmethod
    def of(cls, visit: CareVisit) -> VisitView:
        return cls.model_validate(visit.model_dump())


class CareEntryView(BaseModel):
    """A person on the register, with where their next visit stands today."""

    id: str
    name: str
    district: str
    township: str | None
    address: str | None
    source: str
    recipient_id: str | None
    case_id: str | None
    groups: list[CareGroup]
    worker: str
    worker_shown: str
    enrolled_on: date
    enrolled_by: str
    status: str
    rule_id: str
    provisions: list[str]
    last_visit_on: date | None
    next_due_on: date
    due: str = Field(description="overdue | due | scheduled")
    visit_count: int
    missed: list[date]
    visits: list[VisitView]

    @classmethod
    def of(cls, entry: CareEntry, today: date) -> CareEntryView:
        data = entry.model_dump(exclude={"outbox", "version", "visits"})
        return cls.model_validate(
            data | {"due": due_status(entry, today), "visits": [VisitView.of(v) for v in entry.visits]}
        )


class Worklist(BaseModel):
    """A worker's people: how many visits are overdue and due, and the entries, most pressing first."""

    today: date
    overdue: int
    due: int
    entries: list[CareEntryView]


class VisitRecorded(BaseModel):
    recorded: bool = Field(description="false: this visit was recorded before (a retry)")
    visit: VisitView
    entry: CareEntryView
