"""Flat facts about a case the store indexes and the coordinator's views and rates count.

Every rate counter is a 0/1 field computed from the case's state, so a redelivered event that leaves the
state unchanged cannot count twice, and `$group` with `$sum` (all FerretDB offers) adds them up.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from services.notify.domain.case import SATISFIED, CaseState

# Reports count a fact on its local day in Chongqing (the SLA policy's `timezone`, +08:00, no DST).
REPORT_TZ = timezone(timedelta(hours=8))


def _day(at: datetime | None) -> str | None:
    return at.astimezone(REPORT_TZ).date().isoformat() if at is not None else None


def summary(state: CaseState) -> dict[str, Any]:
    citizen = state.citizen
    case_open = state.status == "open"
    unmet = [
        clock.due(name)
        for clock in state.all_clocks()
        if clock.open and (case_open or clock.key.startswith("payment:"))
        for name, target in clock.targets.items()
        if target.met_at is None
    ]
    resolution = citizen.targets.get("resolution") if citizen else None
    res_met = resolution is not None and resolution.met_at is not None
    dept_clocks = []
    for clock in state.assignments:
        sign = clock.targets.get("sign_for")
        sign_due = clock.due("sign_for") if sign else None
        signed = sign is not None and sign.met_at is not None
        late_unsigned = not signed and sign_due is not None and clock.ended_at is not None and clock.ended_at > sign_due
        dept_clocks.append(
            {
                "key": clock.key,
                "department": clock.department,
                "district": clock.district,
                "role": clock.role,
                "open": clock.open,
                "sign_due": sign_due,
                "m_sign_decided": 1 if signed or late_unsigned else 0,
                "m_sign_on_time": 1 if signed and clock.met_on_time("sign_for") else 0,
                "m_sign_pending": 1 if not signed and clock.open and case_open else 0,
                # the day the sign-for was decided: signed on time, else its deadline (reports)
                "sign_decided_on": _day(
                    sign.met_at if sign is not None and clock.met_on_time("sign_for") else sign_due
                ),
            }
        )
    leads = [c for c in state.assignments if c.role == "lead"]
    res_due = citizen.due("resolution") if citizen and resolution else None
    on_time = bool(res_met and citizen and citizen.met_on_time("resolution"))
    return {
        "district": state.district,
        "sla_class": state.sla_class,
        "status": state.status,
        "stage": state.stage,
        "lead_department": state.lead_department,
        # who the case waits on now: the lead, or the co-handlers once the lead resolved its part
        "responsible_department": state.responsible_department(),
        "awaiting_co_handlers": state.awaiting_co_handlers(),
        "emergency": state.emergency,
        "origin": state.origin,
        "paused": bool(citizen and citizen.paused),
        "due_at": citizen.due("resolution") if citizen and resolution else None,
        "next_due_at": min(unmet) if unmet else None,
        "m_open": 1 if case_open else 0,
        "m_res_decided": 1 if res_met else 0,
        "m_res_on_time": 1 if res_met and citizen and citizen.met_on_time("resolution") else 0,
        "m_res_pending": 1 if case_open and resolution is not None and not res_met else 0,
        "m_cb": 1 if state.satisfaction else 0,
        "m_sat": 1 if state.satisfaction in SATISFIED else 0,
        "dept_clocks": dept_clocks,
        # Days of the facts the reports count (local dates, YYYY-MM-DD), and who they count for.
        "r_received_on": _day(state.received_at or (citizen.started_at if citizen else None)),
        "r_dispatched_on": _day(leads[0].started_at if leads else None),
        "r_first_department": leads[0].department if leads else None,
        "r_lead": state.lead_department or (leads[-1].department if leads else None),
        "r_resolved_on": _day(resolution.met_at if resolution else None),
        "r_res_decided_on": _day(resolution.met_at if on_time and resolution else res_due),
        "r_callback_on": _day(state.satisfaction_at) if state.satisfaction else None,
    }
