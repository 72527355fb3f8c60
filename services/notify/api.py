"""The coordinator's HTTP API (role `coordinator`, district or city scope), the pause API, the page."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field

from common.app import RuntimeDep
from common.auth import require_roles
from common.errors import Forbidden, NotFound
from common.principal import Principal, Role
from services.notify import views
from services.notify.clockwork import Notify
from services.notify.domain.case import CaseState
from services.notify.domain.pauses import pause, resume

Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Worker = Annotated[Principal, Depends(require_roles(Role.COORDINATOR, Role.DEPT_WORKER))]


def get_notify(runtime: RuntimeDep) -> Notify:
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


ViewQuery = Annotated[views.View, Query(description="open, overdue, at_risk, unassigned, returned, arbitration, all")]


@router.get("/cases", summary="Cases in scope, filtered by view, sorted by lateness")
async def cases(
    principal: Coordinator,
    notify: NotifyDep,
    view: ViewQuery = "open",
    district: str | None = None,
    department: str | None = None,
    sla_class: str | None = None,
    hours: Annotated[float | None, Query(gt=0, le=720, description="at_risk horizon")] = None,
    sort: Literal["lateness", "recent"] = "lateness",
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    hours = hours or notify.outbox.settings.at_risk_hours
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


@router.get("/overdue", summary="Open cases with a deadline already passed, latest first")
async def overdue(
    principal: Coordinator, notify: NotifyDep, district: str | None = None, department: str | None = None
) -> list[dict[str, Any]]:
    return await cases(principal, notify, "overdue", district, department)


@router.get("/at-risk", summary="Open cases that breach within `hours`")
async def at_risk(
    principal: Coordinator,
    notify: NotifyDep,
    hours: Annotated[float | None, Query(gt=0, le=720)] = None,
    district: str | None = None,
    department: str | None = None,
) -> list[dict[str, Any]]:
    return await cases(principal, notify, "at_risk", district, department, hours=hours)


@router.get("/unassigned", summary="Open cases no department leads right now (returned, awaiting dispatch)")
async def unassigned(principal: Coordinator, notify: NotifyDep, district: str | None = None) -> list[dict[str, Any]]:
    return await cases(principal, notify, "unassigned", district)


@router.get("/returned", summary="Cases returned (退单) or waiting for arbitration")
async def returned(principal: Coordinator, notify: NotifyDep, district: str | None = None) -> list[dict[str, Any]]:
    both = await cases(principal, notify, "returned", district) + await cases(
        principal, notify, "arbitration", district
    )
    return sorted(both, key=lambda i: -(i["late_s"] or 0))


@router.get("/rates", summary="Response, on-time resolution and satisfaction rates (三率) and backlog")
async def rates(
    principal: Coordinator,
    notify: NotifyDep,
    by: views.GroupBy = "department",
    district: str | None = None,
    department: str | None = None,
) -> list[dict[str, Any]]:
    return await views.rates(
        notify.store, datetime.now(UTC), by=by, district=scope(principal, district), department=department
    )


async def _case(notify: Notify, principal: Principal, case_id: str) -> tuple[dict[str, Any], CaseState]:
    doc = await notify.store.load(case_id)
    if doc is None:
        raise NotFound(f"未找到案件 {case_id}", f"case {case_id} not found", field="case_id")
    if not principal.can_see_district(doc.get("district") or ""):
        raise Forbidden("无权查看该案件", "you may not see this case", field="case_id")
    return doc, CaseState.model_validate(doc["state"])


def _clock_view(clock: Any) -> dict[str, Any]:
    return {
        "key": clock.key,
        "kind": clock.kind,
        "department": clock.department,
        "district": clock.district,
        "role": clock.role,
        "sla_class": clock.sla_class,
        "started_at": clock.started_at,
        "ended_at": clock.ended_at,
        "end_reason": clock.end_reason,
        "paused": clock.paused,
        "pauses": [p.model_dump() for p in clock.pauses],
        "targets": {
            name: {
                "rule_id": t.rule_id,
                "provisions": t.provisions,
                "due_at": clock.due(name),
                "met_at": t.met_at,
                "on_time": clock.met_on_time(name),
            }
            for name, t in clock.targets.items()
        },
    }


@router.get("/cases/{case_id}", summary="One case: every clock, its targets, pauses, decisions and alerts")
async def case_detail(case_id: str, principal: Coordinator, notify: NotifyDep) -> dict[str, Any]:
    doc, state = await _case(notify, principal, case_id)
    now = datetime.now(UTC)
    notes = await notify.store.list_notifications({"case_id": case_id})
    return {
        **views.case_item(doc, now),
        "clocks": [_clock_view(c) for c in state.all_clocks()],
        "decisions": state.decisions,
        "sla_events": [
            {k: v for k, v in e.items() if k != "_id"} | {"event_id": e["_id"]}
            for e in await notify.store.sla_events_of(case_id)
        ],
        "notifications": [
            {
                "key": n["_id"],
                "kind": n["kind"],
                "recipient": n["recipient"],
                "channel": n["channel"],
                "status": n["status"],
                "attempts": len(n.get("attempts", [])),
                "text_zh": n["text_zh"],
            }
            for n in notes
        ],
    }


class PauseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Literal["waiting_for_caller", "caller_unreachable", "caller_requested_delay"] = Field(
        description=(
            "waiting_for_caller 等待来电人 | caller_unreachable 联系不上 | caller_requested_delay 来电人要求延后"
        )
    )
    note: str = Field(default="", max_length=1000)


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


@router.post("/cases/{case_id}/pause", summary="Pause the clock while waiting for the caller (limited)")
async def pause_clock(case_id: str, body: PauseRequest, principal: Worker, notify: NotifyDep) -> dict[str, Any]:
    await _worker_case(notify, principal, case_id)
    department = principal.department if principal.role is Role.DEPT_WORKER else None
    state = await notify.clockwork.record(
        case_id,
        f"pause:{uuid.uuid4()}",
        lambda s: pause(
            s,
            notify.policy,
            department=department,
            reason=body.reason,
            by=principal.sub,
            at=datetime.now(UTC),
            note=body.note,
        ),
    )
    assert state is not None
    return {
        "case_id": case_id,
        "paused": True,
        "due_at": state.citizen.due("resolution") if state.citizen else None,
        "message_zh": "已暂停计时",
        "message_en": "clock paused",
    }


@router.post("/cases/{case_id}/resume", summary="Resume a paused clock")
async def resume_clock(case_id: str, principal: Worker, notify: NotifyDep) -> dict[str, Any]:
    await _worker_case(notify, principal, case_id)
    state = await notify.clockwork.record(
        case_id, f"resume:{uuid.uuid4()}", lambda s: resume(s, by=principal.sub, at=datetime.now(UTC))
    )
    assert state is not None
    return {
        "case_id": case_id,
        "paused": False,
        "due_at": state.citizen.due("resolution") if state.citizen else None,
        "message_zh": "已恢复计时",
        "message_en": "clock resumed",
    }


@router.get("/notifications", summary="Delivery records (texts and alerts) in scope")
async def notifications(
    principal: Coordinator,
    notify: NotifyDep,
    case_id: str | None = None,
    status: Literal["pending", "sent", "failed"] | None = None,
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {}
    if case_id:
        await _case(notify, principal, case_id)
        query["case_id"] = case_id
    elif not principal.city_level:
        raise Forbidden(
            "区县统筹人员请按案件查询通知", "district coordinators query notifications per case", field="case_id"
        )
    if status:
        query["status"] = status
    return [
        {
            "key": n["_id"],
            "case_id": n["case_id"],
            "kind": n["kind"],
            "recipient": n["recipient"],
            "channel": n["channel"],
            "status": n["status"],
            "attempts": n.get("attempts", []),
            "created_at": n["created_at"],
            "sent_at": n.get("sent_at"),
        }
        for n in await notify.store.list_notifications(query)
    ]


@router.get("/sla-policy", summary="The SLA classes and targets in force (for the router and the page)")
async def sla_policy(principal: Worker, notify: NotifyDep) -> dict[str, Any]:
    version = notify.policy.version_at(datetime.now(UTC))
    return {
        "version": version.version,
        "effective_from": version.effective_from,
        "warning_share": notify.policy.warning_share(datetime.now(UTC)),
        "fallback_class": version.fallback_class,
        "classes": {name: c.model_dump(mode="json") for name, c in version.classes.items()},
    }


@pages.get("/", response_class=HTMLResponse)
async def index() -> HTMLResponse:
    return HTMLResponse(resources.files("services.notify").joinpath("static/index.html").read_text(encoding="utf-8"))
