"""The coordinator's workspace beyond the live lists: reports over time (三率, P6.2) with CSV/XLSX
exports, the printable escalation notice (督办单), the working-day calendar (admin), and the page's own
files (the escalation notice page, the vendored charting library).

Every API route answers one of the models in `schemas.py` (the exports answer the same report as a file).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from importlib import resources
from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import HTMLResponse, Response

from common.auth import require_roles
from common.errors import DomainError, NotFound
from common.params import CaseIdPath
from common.principal import Principal, Role
from contracts.codes import departments, districts
from services.notify import calendars, reports
from services.notify.api import Coordinator, NotifyDep, _case, scope
from services.notify.domain.texts import TARGET_EN, TARGET_ZH, TIER_ZH
from services.notify.schemas import CalendarView, CalendarYearView, EscalationNotice, Report
from services.notify.store import GroupBy, Origin

Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
MAX_REPORT_DAYS = 731  # two years of days at most in one report

TIERS_SHORT = {"department_head": "D", "district_coordinator": "Q", "city_coordinator": "S"}

router = APIRouter(prefix="/api/v1", tags=["coordinator"])
files = APIRouter(include_in_schema=False)

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


@router.get(
    "/reports",
    response_model=Report,
    summary="Volumes and the three rates (三率) per day, week or month and per district or department",
    responses={200: {"content": {"text/csv": {}, XLSX: {}}}},
)
async def report(
    principal: Coordinator,
    notify: NotifyDep,
    first: Annotated[date, Query(alias="from", description="first day, YYYY-MM-DD (Chongqing time)")],
    last: Annotated[date, Query(alias="to", description="last day, YYYY-MM-DD, included")],
    by: Literal["day", "week", "month"] = "day",
    group: GroupBy = "district",
    district: str | None = None,
    origin: Origin | None = None,
    format: Literal["json", "csv", "xlsx"] = "json",
) -> Report | Response:
    if last < first:
        raise DomainError("结束日期不能早于开始日期", "`to` must not be before `from`", field="to", status=422)
    if (last - first).days >= MAX_REPORT_DAYS:
        raise DomainError(
            f"时间范围最长{MAX_REPORT_DAYS}天", f"the range is at most {MAX_REPORT_DAYS} days", field="to", status=422
        )
    result = await reports.report(
        notify.store,
        first,
        last,
        datetime.now(UTC),
        by=by,
        group=group,
        district=scope(principal, district),
        origin=origin,
    )
    name = f"report-{first}-{last}-{by}-{group}"
    if format == "csv":
        return Response(
            reports.to_csv(result).encode("utf-8"),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
        )
    if format == "xlsx":
        return Response(
            reports.to_xlsx(result),
            media_type=XLSX,
            headers={"Content-Disposition": f'attachment; filename="{name}.xlsx"'},
        )
    return result


@router.get(
    "/cases/{case_id}/escalation-notice",
    summary="The escalation notice (督办单) of one escalation of the case, for printing",
)
async def escalation_notice(
    case_id: CaseIdPath,
    principal: Coordinator,
    notify: NotifyDep,
    event_id: Annotated[str | None, Query(description="the sla.escalated event; default: the latest")] = None,
) -> EscalationNotice:
    doc, state = await _case(notify, principal, case_id)
    fired = [e for e in await notify.store.sla_events_of(case_id) if e.type == "sla.escalated"]
    chosen = next((e for e in fired if e.event_id == event_id), None) if event_id else (fired[-1] if fired else None)
    if chosen is None:
        raise NotFound(f"案件 {case_id} 没有该督办记录", f"case {case_id} has no such escalation", field="event_id")
    clock = next((c for c in state.all_clocks() if c.key == chosen.clock_key), None)
    target = clock.targets.get(chosen.target) if clock else None
    now = datetime.now(UTC)
    unmet = target is not None and target.met_at is None and clock is not None and clock.open
    due_now = clock.due(chosen.target) if clock and target else chosen.due_at
    dept = departments().get(chosen.department or "")
    dist = districts().get(chosen.district or "")
    t_zh, t_en = TARGET_ZH.get(chosen.target, chosen.target), TARGET_EN.get(chosen.target, chosen.target)
    tier = chosen.tier or "department_head"
    answer = next((a for a in state.answers if a.escalation_event_id == chosen.event_id), None)
    # The answer is due within one working day (P6.2), counted over the holiday calendar.
    work_calendar = notify.policy.calendar
    reply_by = work_calendar.add(now, timedelta(days=1)) if work_calendar else now + timedelta(days=1)
    reply_text = reply_by.astimezone(notify.policy.tz).strftime("%Y-%m-%d %H:%M")
    return EscalationNotice(
        notice_no=f"DB-{case_id}-{TIERS_SHORT.get(tier, tier)}-{chosen.fired_at:%Y%m%d%H%M}",
        case_id=case_id,
        summary=state.summary,
        needs=list(state.needs),
        district=chosen.district,
        district_zh=dist.name_zh if dist else (chosen.district or ""),
        department=chosen.department,
        department_zh=dept.name_zh if dept else (chosen.department or "相关部门"),
        department_en=dept.name_en if dept else (chosen.department or "the department"),
        target=chosen.target,
        target_zh=t_zh,
        rule_id=chosen.rule_id,
        provisions=list(target.provisions) if target else [],
        due_at=chosen.due_at,
        tier=tier,
        tier_zh=TIER_ZH.get(tier, tier),
        escalated_at=chosen.fired_at,
        overdue_s=max(0, round((chosen.fired_at - chosen.due_at).total_seconds())),
        still_unmet=unmet,
        overdue_now_s=round((now - due_now).total_seconds()) if unmet else None,
        asked_zh=(
            f"该案件{t_zh}已超过时限，请{dept.name_zh if dept else '责任部门'}立即办理，"
            f"并于{reply_text}前书面答复办理情况、未按时{t_zh}的原因和整改措施。"
        ),
        asked_en=(
            f"The case missed its {t_en} deadline. {dept.name_en if dept else 'The department'} is to act on it "
            f"at once and answer in writing by {reply_text}: what was done, why the "
            "deadline was missed, and what will change."
        ),
        answer=answer,
        issued_at=now,
    )


@router.get("/calendar", summary="The working-day calendar: public holidays and make-up workdays (调休) by year")
async def calendar_years(principal: Coordinator, notify: NotifyDep) -> CalendarView:
    work_calendar = notify.policy.calendar
    years = sorted(work_calendar.years.values(), key=lambda y: y.year) if work_calendar else []
    today = datetime.now(notify.policy.tz).date()
    return CalendarView(
        timezone=str(notify.policy.tz),
        years=[calendars.year_view(y) for y in years],
        missing=calendars.missing_years(work_calendar, today) if work_calendar else [],
        note_zh="日历未收录的年份按周一至周五为工作日计算（并记录警告）；次年安排公布后由管理员添加。",
        note_en="A year the calendar does not hold counts Monday to Friday (and logs a warning); an admin "
        "adds next year's schedule once it is published.",
    )


@router.post(
    "/calendar/{year}",
    status_code=201,
    summary="Add a year's schedule (admin): CSV with columns date, weekday, kind, name_zh, name_en",
)
async def add_calendar_year(
    year: int,
    principal: Admin,
    notify: NotifyDep,
    body: Annotated[str, Body(media_type="text/csv", description="the year's rows, with the header line")],
) -> CalendarYearView:
    if not 2000 <= year <= 2100:
        raise DomainError("年份须在2000至2100之间", "the year must be between 2000 and 2100", field="year", status=422)
    work_calendar = notify.policy.calendar
    if work_calendar is None:
        raise DomainError("本服务未启用工作日日历", "this service runs without a working-day calendar", field="year")
    added = await calendars.add_year(notify.store, work_calendar, year, body, principal.shown_as)
    return calendars.year_view(added)


def _static(name: str) -> str:
    return resources.files("services.notify").joinpath(f"static/{name}").read_text(encoding="utf-8")


@files.get("/escalation-notice.html", response_class=HTMLResponse)
async def escalation_notice_page() -> HTMLResponse:
    """The printable escalation notice; it reads `api/v1/cases/{id}/escalation-notice` as the page does."""
    return HTMLResponse(_static("notice.html"))


@files.get("/static/chart.umd.min.js")
async def chart_js() -> Response:
    """Chart.js 4 (MIT, licence header kept), vendored from the npm registry: no CDN at run time."""
    return Response(
        _static("chart.umd.min.js"),
        media_type="text/javascript; charset=utf-8",
        headers={"Cache-Control": "public, max-age=86400"},
    )
