"""What the router's HTTP API answers: a task as its department's worker sees it, a case with its tasks
and history, a coordinator's case list row. Built from the domain's `Case`, never from a stored document,
so the outbox and the ids of consumed events never leave the service."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from contracts.events.router import Decision
from services.router.domain.case import Case, CaseStatus, HistoryEntry, Role, Task, TaskStatus
from services.router.domain.routing import RoutingFacts


class CoTaskView(BaseModel):
    """A co-handler's subtask as the lead sees it: whether it is still open, signed for, late."""

    task_id: str
    department: str
    status: TaskStatus
    due_at: datetime | None
    signed_for_at: datetime | None

    @classmethod
    def of(cls, task: Task) -> CoTaskView:
        return cls(
            task_id=task.task_id,
            department=task.department,
            status=task.status,
            due_at=task.due_at,
            signed_for_at=task.signed_for_at,
        )


class TaskView(BaseModel):
    """One task with its case's headline facts: a row of a department's queue, or a task action's answer."""

    case_id: str
    task_id: str
    role: Role
    status: TaskStatus
    department: str
    district: str
    emergency: bool
    sla_class: str
    needs: list[str]
    summary: str
    received_at: datetime
    due_at: datetime | None
    hop: int
    case_status: CaseStatus
    requested_by: str | None
    first_contact_at: datetime | None = Field(description="when this department first reached the caller")
    arbitrated: bool = Field(description="the coordinator named this owner: the lead cannot return it")
    co_tasks: list[CoTaskView] = Field(
        description="the lead's view of the co-handlers' open subtasks (empty for a co-handler's task)"
    )

    @classmethod
    def of(cls, case: Case, task: Task) -> TaskView:
        return cls(
            case_id=case.case_id,
            task_id=task.task_id,
            role=task.role,
            status=task.status,
            department=task.department,
            district=task.district,
            emergency=case.emergency,
            sla_class=case.sla_class,
            needs=list(case.needs),
            summary=case.summary,
            received_at=case.received_at,
            due_at=task.due_at,
            hop=task.hop,
            case_status=case.status,
            requested_by=task.requested_by,
            first_contact_at=task.first_contact_at,
            arbitrated=case.arbitrated,
            co_tasks=[CoTaskView.of(t) for t in case.open_co_tasks()] if task.role == "lead" else [],
        )


class ReturnedTaskView(TaskView):
    """A returned task, with what the return led to."""

    next_step: str = Field(description="redispatched, arbitration (to the district coordinator) or none")
    redispatched_to: str | None = Field(
        default=None, description="the department that now leads the case, when it was re-dispatched"
    )


class CaseView(BaseModel):
    """One case with its tasks and its history: who or which rule decided what, and why (P6.3)."""

    case_id: str
    version: int
    status: CaseStatus
    district: str
    needs: tuple[str, ...]
    emergency: bool
    sla_class: str
    received_at: datetime
    dispatched_at: datetime
    correlation_id: str | None
    request_event_id: str | None
    summary: str
    facts: RoutingFacts
    decision: Decision
    hop: int
    returns: int
    refused: list[str]
    arbitrated: bool
    tasks: list[Task]
    history: list[HistoryEntry]
    merged_into: str | None
    children: list[str]
    outcome: str | None
    resolved_at: datetime | None

    @classmethod
    def of(cls, case: Case) -> CaseView:
        return cls.model_validate(case, from_attributes=True)


class CaseSummary(BaseModel):
    """One row of a coordinator's case list."""

    case_id: str
    status: CaseStatus
    district: str
    emergency: bool
    sla_class: str
    needs: list[str]
    returns: int
    refused: list[str]
    lead: str | None = Field(description="the current lead department")
    received_at: datetime
    hop: int

    @classmethod
    def of(cls, case: Case) -> CaseSummary:
        lead = case.lead_task()
        return cls(
            case_id=case.case_id,
            status=case.status,
            district=case.district,
            emergency=case.emergency,
            sla_class=case.sla_class,
            needs=list(case.needs),
            returns=case.returns,
            refused=list(case.refused),
            lead=lead.department if lead else None,
            received_at=case.received_at,
            hop=case.hop,
        )
