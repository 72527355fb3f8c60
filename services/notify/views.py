"""The coordinator's questions answered from the store's queries (`store.find_cases`,
`store.rate_counts`): what is overdue, at risk, unassigned, returned; the three rates (三率) and the
backlog per department or district.

A rate is on-time / decided, where "decided" counts targets met (on time or late) plus targets still open
whose deadline has passed (counted at query time, so an overdue case weighs on the rate before anyone
closes it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.notify.schemas import CaseItem, DepartmentRates, DistrictRates, RateCounts, ViewCounts
from services.notify.store import CaseOrder, GroupBy, NotifyStore, Origin, View


def case_item(doc: dict[str, Any], now: datetime) -> CaseItem:
    """One row of a view, from the case document's flat facts."""
    next_due = doc.get("next_due_at")
    state = doc.get("state", {})
    department = doc.get("responsible_department", doc.get("lead_department"))
    if department is None:  # unassigned now: show the last lead
        leads = [a for a in state.get("assignments", []) if a.get("role") == "lead"]
        department = leads[-1]["department"] if leads else None
    return CaseItem(
        case_id=doc["_id"],
        district=doc.get("district"),
        department=department,
        assigned=doc.get("lead_department") is not None,
        sla_class=doc.get("sla_class"),
        status=doc.get("status"),
        stage=doc.get("stage"),
        emergency=doc.get("emergency", False),
        paused=doc.get("paused", False),
        due_at=doc.get("due_at"),
        next_due_at=next_due,
        late_s=round((now - next_due).total_seconds()) if next_due else None,
        returns=state.get("returns", 0),
        round=state.get("round", 1),
        needs=list(state.get("needs") or []),
        summary=state.get("summary") or "",
        awaiting_co_handlers=list(doc.get("awaiting_co_handlers") or []),
    )


async def list_cases(
    store: NotifyStore,
    view: View,
    now: datetime,
    *,
    hours: float,
    district: str | None,
    department: str | None,
    sla_class: str | None,
    sort: CaseOrder,
    limit: int,
) -> list[CaseItem]:
    # Sorting by the earliest unmet deadline, ascending, puts the latest case first ("sort by lateness").
    docs = await store.find_cases(
        view, now, hours=hours, district=district, department=department, sla_class=sla_class, sort=sort, limit=limit
    )
    items = [case_item(d, now) for d in docs]
    if sort == "lateness":  # closed cases have no deadline: after the others
        items.sort(key=lambda i: (i.late_s is None, -(i.late_s or 0)))
    return items


async def count_views(
    store: NotifyStore,
    now: datetime,
    *,
    hours: float,
    district: str | None,
    department: str | None,
    sla_class: str | None,
) -> ViewCounts:
    """The size of every view the page's tabs show, one count query each."""
    tabs: tuple[View, ...] = ("overdue", "at_risk", "unassigned", "returned", "arbitration", "open")
    counts = {
        view: await store.count_cases(
            view, now, hours=hours, district=district, department=department, sla_class=sla_class
        )
        for view in tabs
    }
    return ViewCounts(**counts)


def _rate(on_time: int, decided: int) -> float | None:
    return round(on_time / decided, 4) if decided else None


async def rates(
    store: NotifyStore,
    now: datetime,
    *,
    by: GroupBy,
    district: str | None,
    department: str | None,
    origin: Origin | None = None,
) -> list[DepartmentRates] | list[DistrictRates]:
    """Per department or district: response rate, on-time resolution rate, satisfaction rate, backlog;
    of calls or of proactive cases only (P2.3) when `origin` says."""
    counts = await store.rate_counts(now, by=by, district=district, origin=origin)
    names = {name for table in counts.values() for name in table if name is not None}
    if department and by == "department":
        names &= {department}
    by_department: list[DepartmentRates] = []
    by_district: list[DistrictRates] = []
    for name in sorted(names, key=str):
        c = {field: table.get(name, 0) for field, table in counts.items()}
        sign_decided = c["sign_decided"] + c["sign_overdue"]
        res_decided = c["res_decided"] + c["res_overdue"]
        row: dict[str, Any] = {
            "response_rate": _rate(c["sign_on_time"], sign_decided),
            "on_time_resolution_rate": _rate(c["res_on_time"], res_decided),
            "satisfaction_rate": _rate(c["satisfied"], c["callbacks"]),
            "backlog": c["backlog"],
            "counts": RateCounts(**{**c, "sign_decided": sign_decided, "res_decided": res_decided}),
        }
        if by == "department":
            by_department.append(DepartmentRates(department=name, **row))
        else:
            by_district.append(DistrictRates(district=name, **row))
    return by_department if by == "department" else by_district
