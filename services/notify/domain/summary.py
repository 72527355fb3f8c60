"""Flat facts about a case the store indexes and the coordinator's views and rates count.

Every rate counter is a 0/1 field computed from the case's state, so a redelivered event that leaves the
state unchanged cannot count twice, and `$group` with `$sum` (all FerretDB offers) adds them up.
"""

from __future__ import annotations

from typing import Any

from services.notify.domain.case import SATISFIED, CaseState


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
            }
        )
    return {
        "district": state.district,
        "sla_class": state.sla_class,
        "status": state.status,
        "stage": state.stage,
        "lead_department": state.lead_department,
        "emergency": state.emergency,
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
    }
