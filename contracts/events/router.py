"""Events the router publishes: dispatch decisions, department tasks and the case lifecycle."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from .base import Event, Model

CASE_LIFECYCLE_TOPIC = "router.case-lifecycle.v1"
DEPARTMENT_QUEUE_PREFIX = "dept."


def department_queue_topic(department: str) -> str:
    """The queue topic of one department, e.g. `dept.civil_affairs.v1`; its own systems may subscribe."""
    return f"{DEPARTMENT_QUEUE_PREFIX}{department}.v1"


class Assignment(Model):
    department: str
    district: str
    role: Literal["lead", "co_handler"]
    task_id: str | None = None  # the department task this assignment created (when known)
    due_at: AwareDatetime | None = None  # that task's deadline


class Decision(Model):
    """Why a case went where it went (P6.3): the rules that decided and the facts they saw."""

    rule_ids: tuple[str, ...]
    provisions: tuple[str, ...] = ()
    facts: dict[str, Any] = Field(default_factory=dict)
    catalogue_version: str | None = None
    decided_by: str = "router"


class CaseDispatched(Event):
    """The case was dispatched to a lead department and its co-handlers in the place of hardship (P2.3, P5.2d)."""

    TOPIC: ClassVar[str] = CASE_LIFECYCLE_TOPIC
    type: Literal["case.dispatched"] = "case.dispatched"
    district: str
    lead: Assignment
    co_handlers: tuple[Assignment, ...] = ()
    needs: tuple[str, ...]
    sla_class: str
    emergency: bool = False
    decision: Decision
    hop: int = 1
    # Why this dispatch happened: a new request, a return, a reopened case, a coordinator's ruling.
    cause: Literal["help_requested", "returned", "reopened", "arbitration", "reassigned"] = "help_requested"
    refused_departments: tuple[str, ...] = ()


class DepartmentTask(Event):
    """One department's part of a case, on that department's queue topic, keyed by case id."""

    TOPIC: ClassVar[str] = DEPARTMENT_QUEUE_PREFIX + "{department}.v1"
    type: Literal["dept.task"] = "dept.task"
    task_id: str
    department: str
    district: str
    role: Literal["lead", "co_handler"]
    needs: tuple[str, ...]
    sla_class: str
    emergency: bool = False
    summary: str = ""
    due_at: AwareDatetime | None = None
    hop: int = 1
    requested_by: str | None = None  # the lead department that asked for this co-handling task


class DepartmentTaskWithdrawn(Event):
    """A task taken back from a department (returned, reassigned, merged), on that department's queue."""

    TOPIC: ClassVar[str] = DEPARTMENT_QUEUE_PREFIX + "{department}.v1"
    type: Literal["dept.task_withdrawn"] = "dept.task_withdrawn"
    task_id: str
    department: str
    district: str
    reason: str = ""


DepartmentQueueMessage = Annotated[DepartmentTask | DepartmentTaskWithdrawn, Field(discriminator="type")]
department_queue_message: TypeAdapter[DepartmentQueueMessage] = TypeAdapter(DepartmentQueueMessage)


class _ByActor(Event):
    TOPIC: ClassVar[str] = CASE_LIFECYCLE_TOPIC
    actor: str  # user id (sub claim) or "router"
    department: str | None = None
    district: str | None = None


class CaseSignedFor(_ByActor):
    type: Literal["case.signed_for"] = "case.signed_for"
    task_id: str
    role: Literal["lead", "co_handler"] = "lead"


class CaseProgressRecorded(_ByActor):
    type: Literal["case.progress"] = "case.progress"
    task_id: str
    note: str = Field(max_length=4000)
    first_contact: bool = False  # the department reached the caller


class CaseReturned(_ByActor):
    type: Literal["case.returned"] = "case.returned"
    task_id: str
    reason: Literal["not_our_responsibility", "wrong_district", "duplicate", "insufficient_information"]
    note: str = ""
    returns_so_far: int = 1
    role: Literal["lead", "co_handler"] = "lead"
    next_step: Literal["redispatched", "arbitration", "none"] = "redispatched"


class CoHandlingRequested(_ByActor):
    type: Literal["case.co_handling_requested"] = "case.co_handling_requested"
    requested_department: str
    note: str = ""
    task_id: str | None = None  # the co-handler subtask created
    due_at: AwareDatetime | None = None


class CoHandlerTaskClosed(_ByActor):
    type: Literal["case.co_handler_closed"] = "case.co_handler_closed"
    task_id: str
    outcome: Literal["done", "waived"]
    note: str = ""


class LeadResolved(_ByActor):
    """The lead department resolved its task while co-handlers are still working (P2.3): the lead's part
    is done (its resolution clock stops), the case is not (the caller's clock runs until `CaseResolved`,
    which follows once every co-handler subtask is done or waived). `awaiting` names those subtasks."""

    type: Literal["case.lead_resolved"] = "case.lead_resolved"
    task_id: str
    outcome: str
    note: str = ""
    awaiting: tuple[Assignment, ...] = ()  # the co-handlers' open subtasks (department, district, task_id)


class CaseResolved(_ByActor):
    type: Literal["case.resolved"] = "case.resolved"
    outcome: str
    note: str = ""


class CaseReassigned(_ByActor):
    type: Literal["case.reassigned"] = "case.reassigned"
    lead: Assignment
    reason: str = ""
    previous_lead: Assignment | None = None
    kind: Literal["reassign", "change_lead"] = "reassign"


class CasesMerged(_ByActor):
    type: Literal["case.merged"] = "case.merged"
    into_case_id: str  # the surviving case; case_id is the child that was merged into it


class ArbitrationRequested(_ByActor):
    type: Literal["case.arbitration_requested"] = "case.arbitration_requested"
    returns: int
    reason: str = ""


class ArbitrationSettled(_ByActor):
    type: Literal["case.arbitration_settled"] = "case.arbitration_settled"
    lead: Assignment
    note: str = ""


class EscalationAcknowledged(_ByActor):
    """A department answered an escalation (督办) in writing: the answer is in the case's history, and the
    escalation's reminders stop (`escalation_event_id` is the `sla.escalated` event answered)."""

    type: Literal["case.escalation_acknowledged"] = "case.escalation_acknowledged"
    escalation_event_id: str
    answer: str = Field(min_length=1, max_length=2000)


class CaseClosed(_ByActor):
    type: Literal["case.closed"] = "case.closed"
    reason: str = ""


CaseLifecycleEvent = Annotated[
    CaseDispatched
    | CaseSignedFor
    | CaseProgressRecorded
    | CaseReturned
    | CoHandlingRequested
    | CoHandlerTaskClosed
    | LeadResolved
    | CaseResolved
    | CaseReassigned
    | CasesMerged
    | ArbitrationRequested
    | ArbitrationSettled
    | EscalationAcknowledged
    | CaseClosed,
    Field(discriminator="type"),
]
case_lifecycle_event: TypeAdapter[CaseLifecycleEvent] = TypeAdapter(CaseLifecycleEvent)
