"""Pausing a clock while the department waits for the caller: recorded with a reason, and limited."""

from __future__ import annotations

from datetime import datetime

from common.errors import DomainError
from services.notify.domain.case import CaseState
from services.notify.domain.clocks import PauseRecord
from services.notify.domain.policy import SlaPolicy


class PauseRefused(DomainError):
    status = 409
    code = "pause_refused"


def pause(
    state: CaseState, policy: SlaPolicy, *, department: str | None, reason: str, by: str, at: datetime, note: str = ""
) -> CaseState:
    """Pause the citizen clock and the department's own clock; refused when the class's limit says no."""
    state = state.model_copy(deep=True)
    citizen = state.citizen
    if state.status != "open" or citizen is None:
        raise PauseRefused(
            "案件不在办理中，不能暂停计时", "the case is not open, its clock cannot be paused", field="case_id"
        )
    sla_class = policy.class_named(state.sla_class or "", citizen.started_at)
    rule, cited = sla_class.pause, "、".join(sla_class.provisions)
    if not rule.allowed:
        raise PauseRefused(
            f"{sla_class.name_zh}类案件不允许暂停计时（{cited}）",
            f"class {sla_class.name} does not allow pausing the clock ({cited})",
            field="reason",
        )
    if reason not in rule.reasons:
        raise PauseRefused(
            f"暂停原因须为：{'、'.join(rule.reasons)}",
            f"reason must be one of {list(rule.reasons)}",
            field="reason",
            status=422,
        )
    if citizen.paused:
        raise PauseRefused("计时已在暂停中", "the clock is already paused", field="case_id")
    if len(citizen.pauses) >= rule.max_count:
        raise PauseRefused(
            f"暂停次数已达上限（{rule.max_count}次）", f"at most {rule.max_count} pauses are allowed", field="reason"
        )
    if citizen.pause_used(at) >= rule.max_total:
        raise PauseRefused("暂停时长已用完", "the pause allowance is used up", field="reason")
    record = PauseRecord(started_at=at, reason=reason, by=by, note=note)
    citizen.pauses.append(record)
    clock = state.open_assignment(department) if department else state.open_lead()
    if clock is not None:
        clock.pauses.append(record.model_copy())
    state.decide(
        at,
        by,
        sla_class.rule_id,
        "pause",
        reason=reason,
        department=clock.department if clock else None,
        max_count=rule.max_count,
        max_total_s=rule.max_total.total_seconds(),
    )
    return state


def resume(state: CaseState, *, by: str, at: datetime) -> CaseState:
    """End the open pause on every clock of the case."""
    state = state.model_copy(deep=True)
    resumed = False
    for clock in state.all_clocks():
        for record in clock.pauses:
            if record.ended_at is None:
                record.ended_at = at
                resumed = True
    if not resumed:
        raise PauseRefused("计时未暂停", "the clock is not paused", field="case_id")
    state.decide(at, by, "SLA-PAUSE", "resume")
    return state
