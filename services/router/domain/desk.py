"""A department worker's actions on their task: sign for, progress, co-handling, resolve, return."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from common.principal import Principal
from contracts.codes import is_department
from contracts.events.router import (
    ArbitrationRequested,
    Assignment,
    CaseProgressRecorded,
    CaseResolved,
    CaseReturned,
    CaseSignedFor,
    CoHandlerTaskClosed,
    CoHandlingRequested,
    LeadResolved,
)
from services.router.domain.case import WORKABLE, Case, HistoryEntry, Task
from services.router.domain.catalogue import DispatchCatalogue, ReturnReason
from services.router.domain.dispatching import dispatch, emit, new_task
from services.router.domain.errors import DomainError, not_your_task, task_not_found, wrong_state
from services.router.domain.routing import decide


def own_task(case: Case, task_id: str, worker: Principal) -> Task:
    """The worker's task in this case: only their own department and district."""
    task = case.task(task_id)
    if task is None:
        raise task_not_found(task_id)
    if task.department != worker.department or task.district != worker.district:
        raise not_your_task(task_id)
    return task


def _workable(task: Task) -> None:
    if task.status not in WORKABLE:
        raise wrong_state(
            f"任务当前状态为 {task.status}，不能办理", f"task is {task.status}; it cannot be worked on", field="task_id"
        )


def _step(case: Case, worker: Principal, action: str, task: Task, now: datetime, **extra: str | bool | None) -> None:
    case.history.append(
        HistoryEntry(at=now, actor=worker.sub, action=action, task_id=task.task_id, department=task.department, **extra)
    )


def _on_task(case: Case, worker: Principal, task: Task, now: datetime) -> dict[str, Any]:
    """The fields every event of a worker's step on a task carries."""
    return {
        "occurred_at": now,
        "case_id": case.case_id,
        "correlation_id": case.correlation_id,
        "actor": worker.sub,
        "department": task.department,
        "district": task.district,
        "task_id": task.task_id,
    }


def sign_for(case: Case, task_id: str, worker: Principal, now: datetime) -> None:
    """签收: the department takes the task on. Signing twice is a no-op."""
    task = own_task(case, task_id, worker)
    if task.status == "signed_for":
        return
    if task.status != "queued":
        raise wrong_state(
            f"任务当前状态为 {task.status}，不能签收",
            f"task is {task.status}; it cannot be signed for",
            field="task_id",
        )
    task.status, task.signed_for_by, task.signed_for_at = "signed_for", worker.sub, now
    _step(case, worker, "signed_for", task, now)
    emit(
        case,
        CaseSignedFor(
            **_on_task(case, worker, task, now),
            role=task.role,
        ),
    )


def record_progress(case: Case, task_id: str, worker: Principal, note: str, first_contact: bool, now: datetime) -> None:
    """A step of the work; `first_contact` says the department reached the caller (the first one is kept)."""
    task = own_task(case, task_id, worker)
    _workable(task)
    if task.status == "queued":
        raise wrong_state("请先签收再记录进展", "sign for the task before recording progress", field="task_id")
    task.status = "in_progress"
    if task.role == "lead" and case.status == "dispatched":
        case.status = "in_progress"
    if first_contact and task.first_contact_at is None:
        task.first_contact_by, task.first_contact_at = worker.sub, now
    _step(case, worker, "progress", task, now, note=note, first_contact=first_contact or None)
    emit(
        case,
        CaseProgressRecorded(
            **_on_task(case, worker, task, now),
            note=note,
            first_contact=first_contact,
        ),
    )


def request_co_handling(
    case: Case,
    task_id: str,
    worker: Principal,
    department: str,
    note: str,
    due_at: datetime | None,
    catalogue: DispatchCatalogue,
    now: datetime,
) -> Task:
    """The lead asks another department of the same district to co-handle (协同办理, P2.3)."""
    task = own_task(case, task_id, worker)
    _workable(task)
    if task.role != "lead":
        raise wrong_state(
            "只有主办部门可以发起协办", "only the lead department can ask for co-handling", field="task_id"
        )
    if not is_department(department):
        raise wrong_state(f"部门代码 {department} 不存在", f"unknown department {department}", field="department")
    if department == task.department or any(t.department == department for t in case.open_co_tasks()):
        raise wrong_state(
            f"{department} 已在办理此案件", f"{department} is already handling this case", field="department"
        )
    co = new_task(
        case,
        department=department,
        district=task.district,
        role="co_handler",
        catalogue=catalogue,
        now=now,
        requested_by=task.department,
        due_at=due_at,
    )
    _step(case, worker, "co_handling_requested", task, now, note=note)
    emit(
        case,
        CoHandlingRequested(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=worker.sub,
            department=task.department,
            district=task.district,
            requested_department=department,
            note=note,
            task_id=co.task_id,
            due_at=co.due_at,
        ),
    )
    return co


def _close_if_complete(case: Case, actor: str, now: datetime) -> None:
    """The case resolves when the lead resolved and every co-handler subtask is done or waived."""
    lead = case.lead_task()
    if lead is None or lead.status != "resolved" or case.open_co_tasks():
        return
    case.status, case.resolved_at, case.outcome = "resolved", now, lead.outcome
    case.history.append(
        HistoryEntry(
            at=now, actor=actor, action="resolved", task_id=lead.task_id, department=lead.department, note=lead.note
        )
    )
    emit(
        case,
        CaseResolved(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=actor,
            department=lead.department,
            district=lead.district,
            outcome=lead.outcome or "",
            note=lead.note or "",
        ),
    )


def resolve(case: Case, task_id: str, worker: Principal, outcome: str, note: str, now: datetime) -> None:
    """The lead resolves the case; a co-handler marks its subtask done. Only a task signed for (签收)."""
    task = own_task(case, task_id, worker)
    _workable(task)
    if task.status == "queued":
        raise wrong_state("请先签收再办结", "sign for the task before resolving it", field="task_id")
    if not outcome.strip():
        raise DomainError("必填：办理结果", "required: the outcome", field="outcome", status=422, code="invalid")
    task.closed_by, task.closed_at, task.outcome, task.note = worker.sub, now, outcome, note
    if task.role == "co_handler":
        task.status = "done"
        _step(case, worker, "co_handler_done", task, now, note=note)
        emit(
            case,
            CoHandlerTaskClosed(
                **_on_task(case, worker, task, now),
                outcome="done",
                note=note,
            ),
        )
    else:
        task.status = "resolved"
        case.status = "awaiting_co_handlers"
        _step(case, worker, "lead_resolved", task, now, note=note)
        if awaiting := case.open_co_tasks():
            emit(
                case,
                LeadResolved(
                    **_on_task(case, worker, task, now),
                    outcome=outcome,
                    note=note,
                    awaiting=tuple(
                        Assignment(department=t.department, district=t.district, role="co_handler", task_id=t.task_id)
                        for t in awaiting
                    ),
                ),
            )
    _close_if_complete(case, worker.sub, now)


def waive_co_handler(
    case: Case, lead_task_id: str, co_task_id: str, worker: Principal, reason: str, now: datetime
) -> None:
    """The lead waives a co-handler's subtask, with a reason."""
    lead = own_task(case, lead_task_id, worker)
    if lead.role != "lead" or lead.status in ("returned", "withdrawn"):
        raise wrong_state(
            "只有主办部门可以免除协办任务", "only the lead can waive a co-handler subtask", field="task_id"
        )
    co = case.task(co_task_id)
    if co is None or co.role != "co_handler":
        raise task_not_found(co_task_id)
    if co.status in ("done", "waived", "returned", "withdrawn"):
        raise wrong_state(f"协办任务已是 {co.status}", f"co-handler subtask is already {co.status}", field="co_task_id")
    co.status, co.closed_by, co.closed_at, co.note = "waived", worker.sub, now, reason
    _step(case, worker, "co_handler_waived", co, now, reason=reason)
    emit(
        case,
        CoHandlerTaskClosed(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=worker.sub,
            department=co.department,
            district=co.district,
            task_id=co.task_id,
            outcome="waived",
            note=reason,
        ),
    )
    _close_if_complete(case, worker.sub, now)


def return_task(
    case: Case,
    task_id: str,
    worker: Principal,
    reason: ReturnReason,
    note: str,
    catalogue: DispatchCatalogue,
    max_returns: int,
    now: datetime,
) -> str:
    """退单. The lead's return re-dispatches without the refusing department, or after `max_returns`
    returns (or for a reason the catalogue sends to arbitration) goes to the district coordinator.
    A co-handler's return only closes its subtask. Returns the next step."""
    task = own_task(case, task_id, worker)
    _workable(task)
    if task.role == "lead" and case.arbitrated:
        raise wrong_state(
            "协调人已裁定承办部门，不能再退单",
            "the coordinator named this owner; it cannot be returned",
            field="task_id",
        )
    task.status, task.closed_by, task.closed_at, task.outcome, task.note = "returned", worker.sub, now, reason, note
    _step(case, worker, "returned", task, now, reason=reason, note=note)
    if task.role == "co_handler":
        next_step = "none"
    else:
        case.returns += 1
        if task.department not in case.refused:
            case.refused.append(task.department)
        routing = decide(catalogue, case.facts, exclude=set(case.refused))
        to_arbitration = (
            case.returns >= max_returns or catalogue.returns.get(reason) == "arbitration" or routing.needs_arbitration
        )
        next_step = "arbitration" if to_arbitration else "redispatched"
    emit(
        case,
        CaseReturned(
            **_on_task(case, worker, task, now),
            reason=reason,
            note=note,
            returns_so_far=case.returns,
            role=task.role,
            next_step=next_step,
        ),
    )
    if next_step == "redispatched":
        dispatch(case, routing, catalogue, cause="returned", actor="router", now=now, reason=reason)
    elif next_step == "arbitration":
        request_arbitration(case, reason=reason, now=now)
    else:
        _close_if_complete(case, worker.sub, now)
    return next_step


def request_arbitration(case: Case, *, reason: str, now: datetime) -> None:
    """The district coordinator must name the owner (兜底: civil affairs coordination of the district)."""
    case.status = "arbitration"
    case.history.append(HistoryEntry(at=now, actor="router", action="arbitration_requested", reason=reason))
    emit(
        case,
        ArbitrationRequested(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor="router",
            district=case.district,
            department="civil_affairs",
            returns=case.returns,
            reason=reason,
        ),
    )
