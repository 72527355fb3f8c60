"""The coordinator's questions as store queries: what is overdue, at risk, unassigned, returned; the
three rates (三率) and the backlog per department or district.

Everything stays inside what FerretDB 1.24 supports: filters, sort, limit, and aggregation with `$match`,
`$unwind` and `$group` + `$sum`. A rate is on-time / decided, where "decided" counts targets met (on time
or late) plus targets still open whose deadline has passed (counted at query time, so an overdue case
weighs on the rate before anyone closes it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from services.notify.store import NotifyStore

View = Literal["open", "overdue", "at_risk", "unassigned", "returned", "arbitration", "all"]
GroupBy = Literal["department", "district"]


def view_query(
    view: View, now: datetime, *, hours: float, district: str | None, department: str | None, sla_class: str | None
) -> dict[str, Any]:
    query: dict[str, Any] = {} if view == "all" else {"status": "open"}
    if view == "overdue":
        query["next_due_at"] = {"$lte": now}
    elif view == "at_risk":
        query["next_due_at"] = {"$gt": now, "$lte": now + timedelta(hours=hours)}
    elif view == "unassigned":
        query["lead_department"] = None
    elif view == "returned":
        query["stage"] = "returned"
    elif view == "arbitration":
        query["stage"] = "arbitration"
    if district:
        query["district"] = district
    if department:
        query["lead_department"] = department
    if sla_class:
        query["sla_class"] = sla_class
    return query


def case_item(doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """One row of a view; `late_s` > 0 is how late the earliest unmet target is, < 0 the time left."""
    next_due = doc.get("next_due_at")
    state = doc.get("state", {})
    department = doc.get("lead_department")
    if department is None:  # unassigned now: show the last lead
        leads = [a for a in state.get("assignments", []) if a.get("role") == "lead"]
        department = leads[-1]["department"] if leads else None
    return {
        "case_id": doc["_id"],
        "district": doc.get("district"),
        "department": department,
        "assigned": doc.get("lead_department") is not None,
        "sla_class": doc.get("sla_class"),
        "status": doc.get("status"),
        "stage": doc.get("stage"),
        "emergency": doc.get("emergency", False),
        "paused": doc.get("paused", False),
        "due_at": doc.get("due_at"),
        "next_due_at": next_due,
        "late_s": round((now - next_due).total_seconds()) if next_due else None,
        "returns": state.get("returns", 0),
        "round": state.get("round", 1),
    }


async def list_cases(
    store: NotifyStore,
    view: View,
    now: datetime,
    *,
    hours: float,
    district: str | None,
    department: str | None,
    sla_class: str | None,
    sort: str,
    limit: int,
) -> list[dict[str, Any]]:
    query = view_query(view, now, hours=hours, district=district, department=department, sla_class=sla_class)
    # Sorting by the earliest unmet deadline, ascending, puts the latest case first ("sort by lateness").
    order = [("next_due_at", 1), ("_id", 1)] if sort == "lateness" else [("updated_at", -1)]
    docs = await store.find_cases(query, sort=order, limit=limit)
    items = [case_item(d, now) for d in docs]
    if sort == "lateness":  # closed cases have no deadline: after the others
        items.sort(key=lambda i: (i["late_s"] is None, -(i["late_s"] or 0)))
    return items


def _rate(on_time: int, decided: int) -> float | None:
    return round(on_time / decided, 4) if decided else None


async def _sum_by(
    store: NotifyStore,
    match: dict[str, Any],
    key: str,
    field: str | int,
    *,
    unwind: str | None = None,
    then: dict[str, Any] | None = None,
) -> dict[Any, int]:
    """One `$sum` per pipeline: FerretDB 1.24 computes only the first accumulator of a `$group` (the
    others come back 0), so every counter gets its own pipeline."""
    pipeline: list[dict[str, Any]] = [{"$match": match}]
    if unwind:
        pipeline.append({"$unwind": unwind})
    if then:
        pipeline.append({"$match": then})
    pipeline.append({"$group": {"_id": key, "n": {"$sum": field}}})
    return {doc["_id"]: doc["n"] for doc in await store.aggregate(pipeline)}


async def rates(
    store: NotifyStore, now: datetime, *, by: GroupBy, district: str | None, department: str | None
) -> list[dict[str, Any]]:
    """Per department or district: response rate, on-time resolution rate, satisfaction rate, backlog."""
    scope: dict[str, Any] = {"district": district} if district else {}
    key = "$lead_department" if by == "department" else "$district"
    dept_key = "$dept_clocks.department" if by == "department" else "$dept_clocks.district"
    counts = {
        "res_on_time": await _sum_by(store, scope, key, "$m_res_on_time"),
        "res_decided": await _sum_by(store, scope, key, "$m_res_decided"),
        "res_overdue": await _sum_by(store, {**scope, "m_res_pending": 1, "due_at": {"$lte": now}}, key, 1),
        "callbacks": await _sum_by(store, scope, key, "$m_cb"),
        "satisfied": await _sum_by(store, scope, key, "$m_sat"),
        "backlog": await _sum_by(store, scope, key, "$m_open"),
        "sign_on_time": await _sum_by(store, scope, dept_key, "$dept_clocks.m_sign_on_time", unwind="$dept_clocks"),
        "sign_decided": await _sum_by(store, scope, dept_key, "$dept_clocks.m_sign_decided", unwind="$dept_clocks"),
        "sign_overdue": await _sum_by(
            store,
            scope,
            dept_key,
            1,
            unwind="$dept_clocks",
            then={"dept_clocks.m_sign_pending": 1, "dept_clocks.sign_due": {"$lte": now}},
        ),
        "assignments": await _sum_by(store, scope, dept_key, 1, unwind="$dept_clocks"),
    }
    names = {name for table in counts.values() for name in table if name is not None}
    if department and by == "department":
        names &= {department}
    out = []
    for name in sorted(names, key=str):
        c = {field: table.get(name, 0) for field, table in counts.items()}
        sign_decided = c["sign_decided"] + c["sign_overdue"]
        res_decided = c["res_decided"] + c["res_overdue"]
        out.append(
            {
                by: name,
                "response_rate": _rate(c["sign_on_time"], sign_decided),
                "on_time_resolution_rate": _rate(c["res_on_time"], res_decided),
                "satisfaction_rate": _rate(c["satisfied"], c["callbacks"]),
                "backlog": c["backlog"],
                "counts": {**c, "sign_decided": sign_decided, "res_decided": res_decided},
            }
        )
    return out
