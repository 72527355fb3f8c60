"""The operators' and coordinators' lists (thin): case search, the callbacks worklist (回访), and a case's
printable acceptance slip (受理单). Registered before api.py's `/cases/{case_id}` routes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import HTMLResponse

from common.auth import require_roles
from common.errors import Forbidden, NotFound
from common.principal import Principal, Role
from contracts.codes import districts
from contracts.events.hotline import HelpRequested
from services.hotline.domain import lookup_key, mask_name, mask_phone
from services.hotline.domain.callback import DUE_RULE, callback_due_at, resolved_by_for_due_list
from services.hotline.domain.search import MAX_PAGE_SIZE, CaseFilter, received_range, scoped_district, single_day
from services.hotline.domain.status import LABELS, CaseStatus
from services.hotline.intake import HotlineDep
from services.hotline.schemas import CASE_ID, CallbackDueRow, CallbacksDueOut, CaseRow, CaseSearchIn, CaseSearchOut
from services.hotline.slip import render_slip

Staff = Annotated[Principal, Depends(require_roles(Role.OPERATOR, Role.COORDINATOR))]
CaseId = Annotated[str, Path(pattern=CASE_ID, description="Case number, e.g. CQ-20260215-000123")]

router = APIRouter(prefix="/api/v1", tags=["operator"])


def case_row(doc: dict[str, Any]) -> dict[str, Any]:
    state = doc.get("status") or {}
    code = state.get("status", "received")
    district = districts().get(doc["district"])
    caller = doc.get("event", {}).get("caller", {})
    label_zh, label_en = LABELS.get(code, (state.get("label_zh", code), state.get("label_en", code)))
    return {
        "case_id": doc["_id"],
        "received_at": doc["received_at"],
        "caller_name": mask_name(caller.get("name", "")),
        "phone_masked": mask_phone(caller.get("phone", "")),
        "district": doc["district"],
        "district_name_zh": district.name_zh if district else doc["district"],
        "district_name_en": district.name_en if district else doc["district"],
        "needs": doc["needs"],
        "status": code,
        "label_zh": label_zh,
        "label_en": label_en,
        "emergency": doc["emergency"],
    }


def entry_row(entry: dict[str, Any]) -> dict[str, Any]:
    """A result row from the case's search index entry (which holds the caller masked already)."""
    code = entry["status"]
    district = districts().get(entry["district"])
    label_zh, label_en = LABELS.get(code, (entry.get("label_zh", code), entry.get("label_en", code)))
    return {
        "case_id": entry["_id"],
        "received_at": entry["at"],
        "caller_name": entry["caller_name"],
        "phone_masked": entry["phone_masked"],
        "district": entry["district"],
        "district_name_zh": district.name_zh if district else entry["district"],
        "district_name_en": district.name_en if district else entry["district"],
        "needs": entry["needs"],
        "status": code,
        "label_zh": label_zh,
        "label_en": label_en,
        "emergency": entry["emergency"],
    }


@router.get("/cases/search", response_model=CaseSearchOut)
async def search_cases(query: Annotated[CaseSearchIn, Query()], principal: Staff, hotline: HotlineDep) -> CaseSearchOut:
    """Cases by number, phone, ID-card (exact, by keyed hash), caller name or address (part of it),
    district, need, status, emergency and received days; combinable, newest first, a page at a time.
    Operators search the whole city, a district coordinator their district; every search is audited."""
    received_from, received_before = received_range(query.received_from, query.received_to)
    pepper = hotline.pepper
    wanted = CaseFilter(
        case_id=query.case_id,
        phone_key=lookup_key(pepper, "phone", query.phone) if query.phone else None,
        id_card_key=lookup_key(pepper, "id_card", query.id_card) if query.id_card else None,
        name=query.name,
        address=query.address,
        district=scoped_district(principal, query.district),
        needs=tuple(query.need),
        statuses=tuple(query.status),
        emergency=query.emergency,
        received_from=received_from,
        received_before=received_before,
        day=single_day(query.received_from, query.received_to),
    )
    docs, has_more = await hotline.store.search(wanted, skip=(query.page - 1) * query.page_size, limit=query.page_size)
    await hotline.store.audit_read(
        principal,
        action="search",
        reason=query.reason,
        case_ids=[d["_id"] for d in docs],
        query=audited_filters(wanted),
    )
    return CaseSearchOut(
        page=query.page,
        page_size=query.page_size,
        has_more=has_more,
        results=[CaseRow.model_validate(entry_row(d)) for d in docs],
    )


def audited_filters(f: CaseFilter) -> dict[str, str]:
    """What a search asked for, as its audit record keeps it: keys hashed (their start), names masked."""
    kept = {
        "case_id": f.case_id,
        "phone": f.phone_key[:12] if f.phone_key else None,
        "id_card": f.id_card_key[:12] if f.id_card_key else None,
        "name": mask_name(f.name) if f.name else None,
        "address": f"({len(f.address)} chars)" if f.address else None,
        "district": f.district,
        "need": ",".join(f.needs) or None,
        "status": ",".join(f.statuses) or None,
        "emergency": None if f.emergency is None else str(f.emergency).lower(),
        "received_from": f.received_from.isoformat() if f.received_from else None,
        "received_before": f.received_before.isoformat() if f.received_before else None,
    }
    return {k: v for k, v in kept.items() if v is not None}


@router.get("/callbacks/due", response_model=CallbacksDueOut)
async def callbacks_due(
    principal: Staff,
    hotline: HotlineDep,
    upcoming: Annotated[bool, Query(description="also the ones not due yet")] = False,
    district: str | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 50,
) -> CallbacksDueOut:
    """Resolved cases awaiting their callback (回访), due today or overdue, oldest first (H-CALLBACK-DUE,
    P6.2: due `HOTLINE_CALLBACK_DUE_HOURS` after the resolution); a case leaves once its callback is in."""
    now = datetime.now(UTC)
    hours = hotline.settings.callback_due_hours
    docs, has_more = await hotline.store.awaiting_callbacks(
        resolved_by=resolved_by_for_due_list(now, hours, upcoming=upcoming),
        district=scoped_district(principal, district),
        skip=(page - 1) * page_size,
        limit=page_size,
    )
    rows = []
    for doc in docs:
        due = callback_due_at(doc["resolved_at"], hours)
        rows.append(CallbackDueRow(**case_row(doc), resolved_at=doc["resolved_at"], due_at=due, overdue=due < now))
    return CallbacksDueOut(
        due_hours=hours, rule_id=DUE_RULE, page=page, page_size=page_size, has_more=has_more, results=rows
    )


@router.get("/cases/{case_id}/slip", response_class=HTMLResponse)
async def acceptance_slip(
    case_id: CaseId,
    principal: Staff,
    hotline: HotlineDep,
    reason: Annotated[str, Query(min_length=2, max_length=200)] = "打印受理单 | print the acceptance slip",
) -> HTMLResponse:
    """The case's acceptance slip (受理单) as a printable page: the caller masked; the read is audited."""
    doc = await hotline.store.get_intake(case_id)
    if doc is None:
        raise NotFound(f"案件不存在：{case_id}", f"no such case: {case_id}", field="case_id")
    if principal.role is Role.COORDINATOR and not principal.can_see_district(doc["district"]):
        raise Forbidden("无权查看其他区县的案件", "this case is another district's", field="case_id")
    await hotline.store.audit_read(principal, action="print_slip", reason=reason, case_ids=[case_id])
    page = render_slip(
        HelpRequested.model_validate(doc["event"]),
        CaseStatus.model_validate(doc["status"]),
        printed_by=principal.shown_as,
        printed_at=datetime.now(UTC),
    )
    return HTMLResponse(page)
