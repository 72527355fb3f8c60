"""The coordinator's HTTP API (role `coordinator`, district or city scope), the pause API, the page.

Every route answers one of the models in `schemas.py`."""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from common.app import Runtime, get_runtime
from common.auth import require_roles
from common.errors import Forbidden, NotFound
from common.params import CaseIdPath
from common.principal import Principal, Role
from services.notify import views
from services.notify.clockwork import Notify
from services.notify.domain.case import CaseState
from services.notify.domain.clocks import Clock
from services.notify.domain.pauses import pause, resume
from services.notify.schemas import (
    CaseDetail,
    CaseItem,
    CaseNotification,
    ClockChange,
    ClockView,
    DepartmentRates,
    DistrictRates,
    NotificationView,
    PauseRequest,
    SlaEventView,
    SlaPolicyView,
    TargetView,
    ViewCounts,
)
from services.notify.store import CaseOrder, GroupBy, Origin, View

Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Worker = Annotated[Principal, Depends(require_roles(Role.COORDINATOR, Role.DEPT_WORKER))]


async def get_notify(runtime: Annotated[Runtime[Notify], Depends(get_runtime)]) -> Notify:
    return runtime.service


NotifyDep = Annotated[Notify, Depends(get_notify)]

router = APIRouter(prefix="/api/v1", tags=["coordinator"])
pages = APIRouter(include_in_schema=False)


def scope(principal: Principal, district: str | None) -> str | None:
    """The district a query covers: a district coordinator sees only their own (P6.2 coordination)."""
    if principal.city_level:
        return district
    if district and district != principal.district:
        raise Forbidden(
            f"无权查看其他区县（{district}）的案件", f"you may not see district {district}", field="district"
        )
    return principal.district


ViewQuery = Annotated[View, Query(description="open, overdue, at_risk, unassigned, returned, arbitration, all")]


@router.get("/cases", summary="Cases in scope, filtered by view, sorted by lateness")
async def cases(
    principal: Coordinator,
    notify: NotifyDep,
    view: ViewQuery = "open",
    district: str | None = None,
    department: str | None = None,
    sla_class: str | None = None,
    hours: Annotated[float | None, Query(gt=0, le=720, description="at_risk horizon")] = None,
    sort: CaseOrder = "lateness",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[CaseItem]:
    hours = hours or notify.settings.at_risk_hours
    return await views.list_cases(
        notify.store,
        view,
        datetime.now(UTC),
        hours=hours,
        district=scope(principal, district),
        department=department,
        sla_class=sla_class,
        sort=sort,
        limit=limit,
    )


@router.get("/counts", summary="How many cases each view holds (the page's tabs), with the same filters")
async def counts(
    principal: Coordinator,
    notify: NotifyDep,
    district: str | None = None,
    department: str | None = None,
    sla_class: str | None = None,
    hours: Annotated[float | None, Query(gt=0, le=720, description="at_risk horizon")] = None,
) -> ViewCounts:
    return await views.count_views(
        notify.store,
        datetime.now(UTC),
        hours=hours or notify.settings.at_risk_hours,
        district=scope(principal, district),
        department=department,
        sla_class=sla_class,
    )


@router.get("/overdue", summary="Open cases with a deadline already passed, latest first")
async def overdue(
    principal: Coordinator, notify: NotifyDep, district: str | None = None, department: str | None = None
) -> list[CaseItem]:
    return await cases(principal, notify, "overdue", district, department)


@router.get("/at-risk", summary="Open cases that breach within `hours`")
async def at_risk(
    principal: Coordinator,
    notify: NotifyDep,
    hours: Annotated[float | None, Query(gt=0, le=720)] = None,
    district: str | None = None,
    department: str | None = None,
) -> list[CaseItem]:
    return await cases(principal, notify, "at_risk", district, department, hours=hours)


@router.get("/unassigned", summary="Open cases no department leads right now (returned, awaiting dispatch)")
async def unassigned(principal: Coordinator, notify: NotifyDep, district: str | None = None) -> list[CaseItem]:
    return await cases(principal, notify, "unassigned", district)


@router.get("/returned", summary="Open cases returned (退单) at least once, or waiting for arbitration")
async def returned(principal: Coordinator, notify: NotifyDep, district: str | None = None) -> list[CaseItem]:
    both = await cases(principal, notify, "returned", district) + await cases(
        principal, notify, "arbitration", district
    )
    unique = {i.case_id: i for i in both}
    return sorted(unique.values(), key=lambda i: -(i.late_s or 0))


@router.get("/rates", summary="Response, on-time resolution and satisfaction rates (三率) and backlog")
async def rates(
    principal: Coordinator,
    notify: NotifyDep,
    by: GroupBy = "department",
    district: str | None = None,
    department: str | None = None,
    origin: Origin | None = None,
) -> list[DepartmentRates] | list[DistrictRates]:
    return await views.rates(
        notify.store,
        datetime.now(UTC),
        by=by,
        district=scope(principal, district),
        department=department,
        origin=origin,
    )


async def _case(notify: Notify, principal: Principal, case_id: str) -> tuple[dict[str, Any], CaseState]:
    doc = await notify.store.load(case_id)
    if doc is None:
        raise NotFound(f"未找到案件 {case_id}", f"case {case_id} not found", field="case_id")
    if not principal.can_see_district(doc.get("district") or ""):
        raise Forbidden("无权查看该案件", "you may not see this case", field="case_id")
    return doc, CaseState.model_validate(doc["state"])


def _clock_view(clock: Clock, answered: Collection[str] = ()) -> ClockView:
    return ClockView(
        key=clock.key,
        kind=clock.kind,
        department=clock.department,
        district=clock.district,
        role=clock.role,
        sla_class=clock.sla_class,
        started_at=clock.started_at,
        ended_at=clock.ended_at,
        end_reason=clock.end_reason,
        paused=clock.paused,
        pauses=clock.pauses,
        targets={
            name: TargetView(
                rule_id=t.rule_id,
                provisions=t.provisions,
                due_at=clock.due(name),
                met_at=t.met_at,
                on_time=clock.met_on_time(name),
                working_days=t.working_days,
                weekdays_only=t.weekdays_only,
                escalation_answered=name in answered,
            )
            for name, t in clock.targets.items()
        },
    )


@router.get("/cases/{case_id}", summary="One case: every clock, its targets, pauses, decisions and alerts")
async def case_detail(case_id: CaseIdPath, principal: Coordinator, notify: NotifyDep) -> CaseDetail:
    doc, state = await _case(notify, principal, case_id)
    now = datetime.now(UTC)
    notes = await notify.store.list_notifications(case_id=case_id)
    answers = {a.escalation_event_id: a for a in state.answers}
    return CaseDetail(
        **views.case_item(doc, now).model_dump(),
        clocks=[_clock_view(c, state.answered_targets(c)) for c in state.all_clocks()],
        decisions=state.decisions,
        sla_events=[
            SlaEventView(**e.model_dump(), answer=answers.get(e.event_id))
            for e in await notify.store.sla_events_of(case_id)
        ],
        answers=state.answers,
        notifications=[
            CaseNotification(
                key=n.key,
                kind=n.kind,
                recipient=n.recipient,
                channel=n.channel,
                status=n.status,
                attempts=len(n.attempts),
                text_zh=n.text_zh,
            )
            for n in notes
        ],
    )


async def _worker_case(notify: Notify, principal: Principal, case_id: str) -> CaseState:
    doc = await notify.store.load(case_id)
    if doc is None:
        raise NotFound(f"未找到案件 {case_id}", f"case {case_id} not found", field="case_id")
    state = CaseState.model_validate(doc["state"])
    if principal.role is Role.DEPT_WORKER:
        mine = state.open_assignment(principal.department)
        if mine is None or mine.district != principal.district:
            raise Forbidden("本部门不在办理该案件", "your department does not hold this case", field="case_id")
    elif not principal.can_see_district(doc.get("district") or ""):
        raise Forbidden("无权操作该案件", "you may not act on this case", field="case_id")
    return state


def _current(state: CaseState | None, case_id: str) -> CaseState:
    """The case's state before a pause or a resume (checked to exist by `_worker_case` just before)."""
    if state is None:
        raise NotFound(f"未找到案件 {case_id}", f"case {case_id} not found", field="case_id")
    return state


@router.post("/cases/{case_id}/pause", summary="Pause the clock while waiting for the caller (limited)")
async def pause_clock(case_id: CaseIdPath, body: PauseRequest, principal: Worker, notify: NotifyDep) -> ClockChange:
    await _worker_case(notify, principal, case_id)
    department = principal.department if principal.role is Role.DEPT_WORKER else None
    state = await notify.clockwork.record(
        case_id,
        f"pause:{uuid.uuid4()}",
        lambda s: pause(
            _current(s, case_id),
            notify.policy,
            department=department,
            reason=body.reason,
            by=principal.sub,
            at=datetime.now(UTC),
            note=body.note,
        ),
    )
    assert state is not None  # the case exists (checked above) and the change was written
    return ClockChange(
        case_id=case_id,
        paused=True,
        due_at=state.citizen.due("resolution") if state.citizen else None,
        message_zh="已暂停计时",
        message_en="clock paused",
    )


@router.post("/cases/{case_id}/resume", summary="Resume a paused clock")
async def resume_clock(case_id: CaseIdPath, principal: Worker, notify: NotifyDep) -> ClockChange:
    await _worker_case(notify, principal, case_id)
    state = await notify.clockwork.record(
        case_id,
        f"resume:{uuid.uuid4()}",
        lambda s: resume(_current(s, case_id), by=principal.sub, at=datetime.now(UTC)),
    )
    assert state is not None  # the case exists (checked above) and the change was written
    return ClockChange(
        case_id=case_id,
        paused=False,
        due_at=state.citizen.due("resolution") if state.citizen else None,
        message_zh="已恢复计时",
        message_en="clock resumed",
    )


@router.get("/notifications", summary="Delivery records (texts and alerts) in scope")
async def notifications(
    principal: Coordinator,
    notify: NotifyDep,
    case_id: str | None = None,
    status: Literal["pending", "sent", "failed"] | None = None,
) -> list[NotificationView]:
    if case_id:
        await _case(notify, principal, case_id)
    elif not principal.city_level:
        raise Forbidden(
            "区县统筹人员请按案件查询通知", "district coordinators query notifications per case", field="case_id"
        )
    records = await notify.store.list_notifications(case_id=case_id or None, status=status or None)
    return [
        NotificationView(
            key=n.key,
            case_id=n.case_id,
            kind=n.kind,
            recipient=n.recipient,
            channel=n.channel,
            status=n.status,
            attempts=n.attempts,
            created_at=n.created_at,
            sent_at=n.sent_at,
        )
        for n in records
    ]


@router.get("/sla-policy", summary="The SLA classes and targets in force (for the router and the page)")
async def sla_policy(principal: Worker, notify: NotifyDep) -> SlaPolicyView:
    version = notify.policy.version_at(datetime.now(UTC))
    return SlaPolicyView(
        version=version.version,
        effective_from=version.effective_from,
        warning_share=notify.policy.warning_share(datetime.now(UTC)),
        fallback_class=version.fallback_class,
        classes=dict(version.classes),
    )


@pages.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    return HTMLResponse(resources.files("services.notify").joinpath("static/index.html").read_text(encoding="utf-8"))
