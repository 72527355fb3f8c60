"""HTTP routes of the router (thin): the department worker's desk and the coordinator's actions."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from common.app import Runtime, get_runtime
from common.auth import require_roles
from common.errors import Forbidden
from common.params import CaseIdPath, TaskIdPath
from common.principal import Principal, Role
from contracts.events import utcnow
from contracts.validation import DueTime
from services.router import reveals
from services.router.cases import CaseService
from services.router.domain import coordination, desk
from services.router.domain.case import WORKABLE, Case, Task, TaskStatus
from services.router.domain.catalogue import ReturnReason
from services.router.domain.errors import case_not_found, task_not_found
from services.router.schemas import CaseSummary, CaseView, EarlierCaseView, ReturnedTaskView, TaskView

PAGE = Path(__file__).parent / "static" / "index.html"


async def get_service(runtime: Annotated[Runtime[CaseService], Depends(get_runtime)]) -> CaseService:
    return runtime.service


async def dept_worker(principal: Annotated[Principal, Depends(require_roles(Role.DEPT_WORKER))]) -> Principal:
    if not principal.department or not principal.district:
        raise Forbidden("登录凭证缺少部门或区县", "the token names no department or district")
    return principal


Service = Annotated[CaseService, Depends(get_service)]
Worker = Annotated[Principal, Depends(dept_worker)]
Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Anyone = Annotated[Principal, Depends(require_roles(Role.DEPT_WORKER, Role.COORDINATOR))]

pages = APIRouter(tags=["page"])
router = APIRouter(prefix="/api/v1", tags=["department worker"])
coordinator = APIRouter(prefix="/api/v1/coordinator", tags=["coordinator"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ProgressBody(_Body):
    note: str = Field(min_length=1, max_length=4000)
    first_contact: bool = False


class CoHandlingBody(_Body):
    department: str = Field(min_length=1, max_length=64)
    note: str = Field(default="", max_length=4000)
    due_at: DueTime | None = None


class ResolveBody(_Body):
    outcome: str = Field(min_length=1, max_length=200)
    note: str = Field(default="", max_length=4000)


class ReturnBody(_Body):
    reason: ReturnReason
    note: str = Field(min_length=1, max_length=4000)


class WaiveBody(_Body):
    co_task_id: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=4000)


class AssignBody(_Body):
    department: str = Field(min_length=1, max_length=64)
    district: str | None = Field(default=None, max_length=16)
    reason: str = Field(min_length=1, max_length=4000)


class LeadBody(_Body):
    department: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=4000)


class MergeBody(_Body):
    into_case_id: str = Field(pattern=r"^CQ-\d{8}-\d{6}$")
    note: str = Field(default="", max_length=4000)


def case_of_task(task_id: str) -> str:
    case_id, sep, _ = task_id.rpartition("-T")
    if not sep or not case_id:
        raise task_not_found(task_id)
    return case_id


def task_view(case: Case, task_id: str) -> TaskView:
    task = case.task(task_id)
    if task is None:
        raise task_not_found(task_id)
    return TaskView.of(case, task)


@pages.get("/", response_class=HTMLResponse, include_in_schema=False)
async def page() -> HTMLResponse:
    return HTMLResponse(PAGE.read_text(encoding="utf-8"))


@router.get("/queue", summary="My department's queue in my district: emergencies first, then oldest")
async def my_queue(
    worker: Worker,
    service: Service,
    status: Annotated[list[TaskStatus] | None, Query()] = None,
    awaiting_co_handlers: Annotated[
        bool, Query(description="also the cases this department resolved as lead that still wait for a co-handler")
    ] = False,
) -> list[TaskView]:
    wanted = list(status or sorted(WORKABLE))
    cases = await service.store.queue(
        worker.department or "", worker.district or "", wanted, awaiting_co_handlers=awaiting_co_handlers
    )

    def listed(case: Case, task: Task) -> bool:
        if task.department != worker.department or task.district != worker.district:
            return False
        waiting = task.role == "lead" and task.status == "resolved" and case.status == "awaiting_co_handlers"
        return task.status in wanted or (awaiting_co_handlers and waiting)

    return [TaskView.of(case, task) for case in cases for task in case.tasks if listed(case, task)]


@router.get(
    "/cases/{case_id}",
    summary="One case: tasks, history (who did what, by which rule), the caller and place masked, the "
    "needs' answers, the description, the caller's earlier cases",
)
async def get_case(case_id: CaseIdPath, principal: Anyone, service: Service) -> CaseView:
    case = await reveals.visible_case(service, case_id, principal)
    details, earlier = await reveals.details_of(service, case)
    return CaseView.of(case, details, [EarlierCaseView(**vars(e)) for e in earlier])


async def _task_action(service: CaseService, task_id: str, action: Callable[[Case], object]) -> TaskView:
    case, _ = await service.update(case_of_task(task_id), action)
    return task_view(case, task_id)


@router.post("/tasks/{task_id}/sign-for", summary="签收 Sign for a task")
async def sign_for(task_id: TaskIdPath, worker: Worker, service: Service) -> TaskView:
    return await _task_action(service, task_id, lambda c: desk.sign_for(c, task_id, worker, utcnow()))


@router.post("/tasks/{task_id}/progress", summary="Record progress")
async def progress(task_id: TaskIdPath, body: ProgressBody, worker: Worker, service: Service) -> TaskView:
    return await _task_action(
        service, task_id, lambda c: desk.record_progress(c, task_id, worker, body.note, body.first_contact, utcnow())
    )


@router.post("/tasks/{task_id}/co-handling", summary="Ask another department to co-handle (lead only)")
async def co_handling(task_id: TaskIdPath, body: CoHandlingBody, worker: Worker, service: Service) -> TaskView:
    case, co_task_id = await service.update(
        case_of_task(task_id),
        lambda c: (
            desk.request_co_handling(
                c, task_id, worker, body.department, body.note, body.due_at, service.catalogue, utcnow()
            ).task_id
        ),
    )
    return task_view(case, co_task_id)


@router.post("/tasks/{task_id}/resolve", summary="Resolve (lead) or finish a co-handling subtask")
async def resolve(task_id: TaskIdPath, body: ResolveBody, worker: Worker, service: Service) -> TaskView:
    return await _task_action(
        service, task_id, lambda c: desk.resolve(c, task_id, worker, body.outcome, body.note, utcnow())
    )


@router.post("/tasks/{task_id}/waive", summary="Waive a co-handler subtask, with a reason (lead only)")
async def waive(task_id: TaskIdPath, body: WaiveBody, worker: Worker, service: Service) -> TaskView:
    return await _task_action(
        service, task_id, lambda c: desk.waive_co_handler(c, task_id, body.co_task_id, worker, body.reason, utcnow())
    )


@router.post("/tasks/{task_id}/return", summary="退单 Return a task with a reason code and a note")
async def return_task(task_id: TaskIdPath, body: ReturnBody, worker: Worker, service: Service) -> ReturnedTaskView:
    case, next_step = await service.update(
        case_of_task(task_id),
        lambda c: desk.return_task(
            c, task_id, worker, body.reason, body.note, service.catalogue, service.max_returns, utcnow()
        ),
    )
    lead = case.lead_task() if next_step == "redispatched" else None
    return ReturnedTaskView(
        **task_view(case, task_id).model_dump(), next_step=next_step, redispatched_to=lead.department if lead else None
    )


@coordinator.get("/cases", summary="Cases in my district (all, at city level) by status")
async def coordinator_cases(
    who: Coordinator, service: Service, status: Annotated[list[str] | None, Query()] = None
) -> list[CaseSummary]:
    district = None if who.city_level else who.district
    wanted = status or ["arbitration", "dispatched", "in_progress", "awaiting_co_handlers"]
    return [CaseSummary.of(c) for c in await service.store.district_cases(district, wanted)]


async def _case_action(service: CaseService, case_id: str, action: Callable[[Case], object]) -> CaseView:
    case, _ = await service.update(case_id, action)
    return CaseView.of(case)


@coordinator.post("/cases/{case_id}/arbitration", summary="Settle arbitration: name the owner")
async def settle(case_id: CaseIdPath, body: AssignBody, who: Coordinator, service: Service) -> CaseView:
    return await _case_action(
        service,
        case_id,
        lambda c: coordination.settle_arbitration(
            c, who, body.department, body.district, body.reason, service.catalogue, utcnow()
        ),
    )


@coordinator.post("/cases/{case_id}/reassign", summary="Reassign to another lead department or district")
async def reassign(case_id: CaseIdPath, body: AssignBody, who: Coordinator, service: Service) -> CaseView:
    return await _case_action(
        service,
        case_id,
        lambda c: coordination.reassign(
            c, who, body.department, body.district, body.reason, service.catalogue, utcnow()
        ),
    )


@coordinator.post("/cases/{case_id}/lead", summary="Make a co-handler the lead")
async def change_lead(case_id: CaseIdPath, body: LeadBody, who: Coordinator, service: Service) -> CaseView:
    return await _case_action(
        service,
        case_id,
        lambda c: coordination.change_lead(c, who, body.department, body.reason, service.catalogue, utcnow()),
    )


@coordinator.post("/cases/{case_id}/merge", summary="并单 Merge this duplicate into another case")
async def merge(case_id: CaseIdPath, body: MergeBody, who: Coordinator, service: Service) -> CaseView:
    parent = await service.store.get(body.into_case_id)
    if parent is None:
        raise case_not_found(body.into_case_id)
    now = utcnow()
    view = await _case_action(service, case_id, lambda c: coordination.merge_into(c, parent, who, body.note, now))
    await service.update(body.into_case_id, lambda p: coordination.link_child(p, case_id, who, now))
    return view
