"""HTTP routes of the desk's who-and-where and escalations (thin): reveal a case's caller with a reason,
read the reveal records, list and answer the escalations (督办) waiting for the department."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import Field

from common.auth import require_roles
from common.params import CaseIdPath
from common.principal import Principal, Role
from services.router import escalations, reveals
from services.router.api import Anyone, Service, Worker, _Body
from services.router.domain.details import RevealRecord
from services.router.schemas import AcknowledgedView, EscalationView, RevealView

router = APIRouter(prefix="/api/v1", tags=["department worker"])
Auditor = Annotated[Principal, Depends(require_roles(Role.DEPT_WORKER, Role.COORDINATOR, Role.ADMIN))]


class RevealBody(_Body):
    reason: str = Field(min_length=2, max_length=500, description="why the caller's details are needed")


class AnswerBody(_Body):
    answer: str = Field(min_length=1, max_length=2000, description="the department's written answer")


@router.post(
    "/cases/{case_id}/reveal",
    summary="Show the caller's name, phone and address in clear, with a reason (an audit record is kept)",
)
async def reveal(case_id: CaseIdPath, body: RevealBody, who: Anyone, service: Service) -> RevealView:
    details, record = await reveals.reveal(service, case_id, who, body.reason)
    return RevealView.of(details, record)


@router.get("/cases/{case_id}/reveals", summary="Who revealed this case's caller, when and why")
async def reveal_records(case_id: CaseIdPath, who: Auditor, service: Service) -> list[RevealRecord]:
    return await reveals.reveals_of(service, case_id, who)


@router.get(
    "/escalations",
    summary="督办 Escalations waiting for my department's answer (a coordinator: the district's), earliest due first",
)
async def open_escalations(who: Anyone, service: Service) -> list[EscalationView]:
    return EscalationView.list_of(await escalations.visible_escalations(service, who))


@router.post(
    "/escalations/{escalation_event_id}/acknowledge",
    summary="Answer an escalation in writing (recorded in the case's history; a second answer is refused)",
)
async def acknowledge(escalation_event_id: str, body: AnswerBody, worker: Worker, service: Service) -> AcknowledgedView:
    case, escalation, at = await escalations.answer(service, escalation_event_id, worker, body.answer)
    return AcknowledgedView(
        escalation_event_id=escalation_event_id,
        case_id=case.case_id,
        department=escalation.department,
        answer=body.answer,
        answered_at=at,
        answered_by=worker.shown_as,
        case_status=case.status,
    )
