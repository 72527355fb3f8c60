"""The care register's HTTP routes (thin; P2.2, P5.3): officers and coordinators enrol people and name the
responsible worker; a worker lists their people with the visits due and overdue, and records visits.
Bodies and views are in `services.relief.care_schemas`; the use cases in `services.relief.care`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from common.app import Runtime, get_runtime
from common.auth import require_roles
from common.principal import Principal, Role
from services.relief.care import CareRegister
from services.relief.care_schemas import CareEntryView, Enrol, Reassign, VisitBody, VisitRecorded, VisitView, Worklist
from services.relief.domain.care import CareVisit
from services.relief.service import Relief

Officer = Annotated[Principal, Depends(require_roles(Role.RELIEF_OFFICER, Role.COORDINATOR))]
Worker = Annotated[Principal, Depends(require_roles(Role.DEPT_WORKER, Role.RELIEF_OFFICER, Role.COORDINATOR))]
router = APIRouter(prefix="/api/v1/care", tags=["care register"])


async def get_register(runtime: Annotated[Runtime[Relief], Depends(get_runtime)]) -> CareRegister:
    register = runtime.service.care
    if register is None:  # pragma: no cover - app.py always builds it
        raise RuntimeError("the care register is not set up")
    return register


RegisterDep = Annotated[CareRegister, Depends(get_register)]


@router.post("/register", status_code=201, response_model=CareEntryView, summary="Put a person on the register")
async def enrol(body: Enrol, officer: Officer, register: RegisterDep) -> CareEntryView:
    entry = await register.enrol(
        officer,
        recipient_id=body.recipient_id,
        case_id=body.case_id,
        groups=body.groups,
        worker=body.worker,
        worker_name=body.worker_name,
        address=body.address,
        township=body.township,
    )
    return CareEntryView.of(entry, register.clock())


@router.get("/register", response_model=list[CareEntryView], summary="The district's register")
async def district_register(
    officer: Officer, register: RegisterDep, district: str | None = None
) -> list[CareEntryView]:
    today = register.clock()
    return [CareEntryView.of(e, today) for e in await register.of_district(officer, district)]


@router.get("/mine", response_model=Worklist, summary="The worker's people and the visits due or overdue")
async def mine(worker: Worker, register: RegisterDep) -> Worklist:
    today = register.clock()
    views = [CareEntryView.of(e, today) for e in await register.mine(worker)]
    return Worklist(
        today=today,
        overdue=sum(v.due == "overdue" for v in views),
        due=sum(v.due == "due" for v in views),
        entries=views,
    )


@router.get("/register/{entry_id}", response_model=CareEntryView, summary="One person on the register")
async def entry(entry_id: str, worker: Worker, register: RegisterDep) -> CareEntryView:
    return CareEntryView.of(await register.get(entry_id, worker), register.clock())


@router.get("/register/{entry_id}/visits", response_model=list[VisitView], summary="Every visit, newest first")
async def visits(entry_id: str, worker: Worker, register: RegisterDep) -> list[VisitView]:
    found = await register.get(entry_id, worker)
    return [VisitView.of(CareVisit.model_validate(_visit(doc))) for doc in await register.history(found)]


def _visit(doc: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in doc.items() if k in CareVisit.model_fields}


@router.post(
    "/register/{entry_id}/visits",
    status_code=201,
    response_model=VisitRecorded,
    summary="Record a visit (a retry of the same visit returns it, 200)",
)
async def record_visit(
    entry_id: str, body: VisitBody, worker: Worker, register: RegisterDep, response: Response
) -> VisitRecorded:
    entry, visit, recorded = await register.record_visit(
        worker,
        entry_id,
        visited_on=body.visited_on,
        mode=body.mode,
        outcome=body.outcome,
        needs=body.needs,
        note=body.note,
    )
    if not recorded:
        response.status_code = 200
    return VisitRecorded(recorded=recorded, visit=VisitView.of(visit), entry=CareEntryView.of(entry, register.clock()))


@router.post("/register/{entry_id}/worker", response_model=CareEntryView, summary="Name another responsible worker")
async def reassign(entry_id: str, body: Reassign, officer: Officer, register: RegisterDep) -> CareEntryView:
    entry = await register.reassign(officer, entry_id, body.worker, body.worker_name)
    return CareEntryView.of(entry, register.clock())
