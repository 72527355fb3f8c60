"""A case's assignment state: the case document the router keeps, and its task records."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID, uuid4

from pydantic import BaseModel, ConfigDict, Field

from contracts.events.router import Assignment, Decision
from services.router.domain.details import MaskedContact
from services.router.domain.routing import RoutingFacts

Role = Literal["lead", "co_handler"]
TaskStatus = Literal[
    "pending",  # decided, on its way through the department queue
    "queued",  # arrived on the department's queue: visible to its workers
    "signed_for",  # 签收
    "in_progress",
    "resolved",  # the lead's outcome is in (the case may still wait for co-handlers)
    "done",  # a co-handler finished its part
    "waived",  # the lead waived a co-handler subtask, with a reason
    "returned",  # 退单
    "withdrawn",  # taken back (re-dispatch, reassignment, merge)
]
CaseStatus = Literal["dispatched", "in_progress", "awaiting_co_handlers", "arbitration", "resolved", "merged"]
OPEN_TASK: frozenset[TaskStatus] = frozenset({"pending", "queued", "signed_for", "in_progress"})
WORKABLE: frozenset[TaskStatus] = frozenset({"queued", "signed_for", "in_progress"})
CLOSED_CO_TASK: frozenset[TaskStatus] = frozenset({"done", "waived", "returned", "withdrawn"})


class _Mutable(BaseModel):
    model_config = ConfigDict(extra="ignore", validate_assignment=False)


class Task(_Mutable):
    task_id: str
    event_id: UUID = Field(default_factory=uuid4)  # the DepartmentTask message's id
    department: str
    district: str
    role: Role
    status: TaskStatus = "pending"
    hop: int = 1
    created_at: datetime
    due_at: datetime | None = None
    requested_by: str | None = None
    queued_at: datetime | None = None
    signed_for_by: str | None = None
    signed_for_at: datetime | None = None
    first_contact_by: str | None = None  # the department reached the caller (the first-contact target)
    first_contact_at: datetime | None = None
    closed_by: str | None = None
    closed_at: datetime | None = None
    outcome: str | None = None
    note: str | None = None

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK

    def assignment(self) -> Assignment:
        return Assignment(
            department=self.department, district=self.district, role=self.role, task_id=self.task_id, due_at=self.due_at
        )


class HistoryEntry(_Mutable):
    """One hop or step, with who or which rule decided and why (P6.3)."""

    at: datetime
    actor: str
    action: str
    task_id: str | None = None
    department: str | None = None
    reason: str | None = None
    note: str | None = None
    first_contact: bool | None = None  # a progress step that reached the caller
    rule_ids: list[str] = Field(default_factory=list)
    event_id: str | None = None


class Case(_Mutable):
    case_id: str
    version: int = 0
    status: CaseStatus = "dispatched"
    district: str
    needs: tuple[str, ...]
    emergency: bool = False
    sla_class: str
    received_at: datetime
    dispatched_at: datetime
    correlation_id: str | None = None
    request_event_id: str | None = None  # the help request that opened the case
    summary: str = ""
    # Who and where, masked (the clear record is kept apart, `CaseDetails`); None for cases from before.
    contact: MaskedContact | None = None
    facts: RoutingFacts
    decision: Decision
    hop: int = 1
    returns: int = 0
    refused: list[str] = Field(default_factory=list)
    arbitrated: bool = False
    tasks: list[Task] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list)
    merged_into: str | None = None
    children: list[str] = Field(default_factory=list)
    outcome: str | None = None
    resolved_at: datetime | None = None
    applied_events: list[str] = Field(default_factory=list)  # ids of consumed events, for dedupe
    outbox: list[dict[str, Any]] = Field(default_factory=list)  # events to publish, kept with the state

    def task(self, task_id: str) -> Task | None:
        return next((t for t in self.tasks if t.task_id == task_id), None)

    def lead_task(self) -> Task | None:
        """The current lead task (the newest one not returned or withdrawn)."""
        leads = [t for t in self.tasks if t.role == "lead" and t.status not in ("returned", "withdrawn")]
        return leads[-1] if leads else None

    def open_co_tasks(self) -> list[Task]:
        return [t for t in self.tasks if t.role == "co_handler" and t.status not in CLOSED_CO_TASK]

    def next_task_id(self) -> str:
        return f"{self.case_id}-T{len(self.tasks) + 1}"

    def queue_keys(self) -> list[str]:
        """`department|district|status` of every task: the index the worker queue is read from."""
        return sorted({queue_key(t.department, t.district, t.status) for t in self.tasks})

    def to_document(self) -> dict[str, Any]:
        """The stored form: the fields queries filter and sort on, plus the whole state as one JSON text
        (unset fields left out). FerretDB 1.24 spends most of a write converting nested documents, in
        proportion to their size; one text field makes case writes two to three times cheaper, and nothing
        queries inside the state."""
        return {
            "_id": self.case_id,
            "version": self.version,
            "status": self.status,
            "district": self.district,
            "emergency": self.emergency,
            "received_at": self.received_at,
            "queue_keys": self.queue_keys(),
            "outbox_pending": bool(self.outbox),
            "outbox": self.outbox,
            "merged_into": self.merged_into,
            "request_event_id": self.request_event_id,
            "state": self.model_dump_json(exclude={"version", "outbox"}, exclude_none=True),
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> Case:
        case = cls.model_validate_json(doc["state"])
        case.version = doc["version"]
        if "outbox" in doc:  # documents written before the outbox moved out of `state` keep it there
            case.outbox = list(doc["outbox"])
        return case


def queue_key(department: str, district: str, status: str) -> str:
    return f"{department}|{district}|{status}"
