"""What the router's HTTP API answers: a task as its department's worker sees it, a case with its tasks
and history, a coordinator's case list row. Built from the domain's `Case`, never from a stored document,
so the outbox and the ids of consumed events never leave the service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, Field

from contracts.catalogue import AttributeValue, service_catalogue
from contracts.events.router import Decision
from services.router.domain.case import Case, CaseStatus, HistoryEntry, Role, Task, TaskStatus
from services.router.domain.details import CaseDetails, MaskedContact, RevealRecord
from services.router.domain.escalations import Escalation
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
    contact: MaskedContact | None = Field(
        default=None, description="who and where, masked (name 李*, phone 138****5678, the start of the address)"
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
            contact=case.contact,
        )


class ReturnedTaskView(TaskView):
    """A returned task, with what the return led to."""

    next_step: str = Field(description="redispatched, arbitration (to the district coordinator) or none")
    redispatched_to: str | None = Field(
        default=None, description="the department that now leads the case, when it was re-dispatched"
    )


class AnswerView(BaseModel):
    """One answer to a need's question (an Open311 attribute), with the question and the value named."""

    code: str
    question_zh: str
    question_en: str
    value: AttributeValue
    shown_zh: str
    shown_en: str


def answers_of(needs: Sequence[str], attributes: dict[str, AttributeValue]) -> list[AnswerView]:
    """The needs' answers in the catalogue's order, named in both languages (unknown codes as they are)."""
    catalogue = service_catalogue()
    known = catalogue.by_code()
    questions = {a.code: a for need in needs if need in known for a in catalogue.attributes_of(need)}
    ordered = [c for c in questions if c in attributes] + [c for c in attributes if c not in questions]
    out = []
    for code in ordered:
        value, question = attributes[code], questions.get(code)
        names = {o.key: o for o in question.options()} if question else {}
        items = value if isinstance(value, list) else [value]
        zh = "、".join(names[str(v)].name_zh if str(v) in names else _plain(v) for v in items)
        en = ", ".join(names[str(v)].name_en if str(v) in names else _plain(v) for v in items)
        out.append(
            AnswerView(
                code=code,
                question_zh=question.description_zh if question else code,
                question_en=question.description_en if question else code,
                value=value,
                shown_zh=zh,
                shown_en=en,
            )
        )
    return out


def _plain(value: AttributeValue) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class CaseDetailsView(BaseModel):
    """What the request said beyond the routing facts: the needs' answers, why it is an emergency, the
    whole description (the caller's name, phone and address only masked, in `contact`)."""

    answers: list[AnswerView]
    emergency_reasons: list[str]
    description: str
    consents_to_texts: bool = Field(description="the caller agreed on the call to texts about the case")

    @classmethod
    def of(cls, case: Case, details: CaseDetails) -> CaseDetailsView:
        return cls(
            answers=answers_of(case.needs, details.attributes),
            emergency_reasons=list(details.emergency_reasons),
            description=details.description,
            consents_to_texts=details.consents_to_texts,
        )


class EarlierCaseView(BaseModel):
    """Another case of the same caller (same phone or ID card), found by their keyed hashes (P2.3)."""

    case_id: str
    received_at: datetime
    needs: list[str]
    status: CaseStatus


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
    contact: MaskedContact | None = Field(default=None, description="who and where, masked until revealed")
    details: CaseDetailsView | None = Field(
        default=None, description="the needs' answers, the emergency reasons, the whole description"
    )
    earlier_cases: list[EarlierCaseView] = Field(
        default_factory=list, description="the caller's earlier cases (same phone or ID card), newest first"
    )

    @classmethod
    def of(cls, case: Case, details: CaseDetails | None = None, earlier: Sequence[EarlierCaseView] = ()) -> CaseView:
        view = cls.model_validate(case, from_attributes=True)
        if details is not None:
            view.details = CaseDetailsView.of(case, details)
        view.earlier_cases = list(earlier)
        return view


class RevealView(BaseModel):
    """The caller's personal fields in clear, after a reveal with a reason (the audit record's id given)."""

    case_id: str
    caller_name: str
    caller_phone: str
    tel: str = Field(description="a tel: link to call the caller")
    district: str
    township: str | None
    address: str | None
    reveal_id: str
    revealed_at: datetime
    reason: str

    @classmethod
    def of(cls, details: CaseDetails, record: RevealRecord) -> RevealView:
        dial = "".join(ch for ch in details.caller_phone if ch.isdigit() or ch == "+")
        return cls(
            case_id=record.case_id,
            caller_name=details.caller_name,
            caller_phone=details.caller_phone,
            tel=f"tel:{dial}",
            district=details.place.district,
            township=details.place.township,
            address=details.place.address,
            reveal_id=record.reveal_id,
            revealed_at=record.at,
            reason=record.reason,
        )


class EscalationView(Escalation):
    """An escalation (督办) waiting for the department's written answer."""

    escalations_of_case: int = Field(description="how many open escalations this case has in the list")

    @classmethod
    def list_of(cls, escalations: Sequence[Escalation]) -> list[EscalationView]:
        counts: dict[str, int] = {}
        for e in escalations:
            counts[e.case_id] = counts.get(e.case_id, 0) + 1
        return [cls(**e.model_dump(), escalations_of_case=counts[e.case_id]) for e in escalations]


class AcknowledgedView(BaseModel):
    """A department's answer to an escalation, as recorded in the case's history."""

    escalation_event_id: str
    case_id: str
    department: str
    answer: str
    answered_at: datetime
    answered_by: str
    case_status: CaseStatus


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
