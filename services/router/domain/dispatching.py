"""Opening and (re-)dispatching a case: tasks on department queues plus the lifecycle event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from contracts.events.base import Event
from contracts.events.router import (
    CaseDispatched,
    DepartmentTask,
    DepartmentTaskWithdrawn,
)
from services.router.domain.case import Case, HistoryEntry, Task
from services.router.domain.catalogue import DispatchCatalogue
from services.router.domain.routing import Routing, RoutingFacts

ROUTER = "router"


def emit(case: Case, event: Event, *, department: str | None = None) -> None:
    """Queue an event in the case's outbox: on a department's queue when `department` is given."""
    entry: dict[str, Any] = {
        "queue": "department" if department else "lifecycle",
        "body": event.model_dump(mode="json"),
    }
    if department:
        entry["department"] = department
    case.outbox.append(entry)


def new_task(
    case: Case,
    *,
    department: str,
    district: str,
    role: str,
    catalogue: DispatchCatalogue,
    now: datetime,
    requested_by: str | None = None,
    due_at: datetime | None = None,
) -> Task:
    """Add a task and its DepartmentTask message (its deadline from the SLA class unless given)."""
    task = Task(
        task_id=case.next_task_id(),
        department=department,
        district=district,
        role=role,
        hop=case.hop,
        created_at=now,
        due_at=due_at or catalogue.sla(case.sla_class).due(now),
        requested_by=requested_by,
    )
    case.tasks.append(task)
    emit(
        case,
        DepartmentTask(
            event_id=task.event_id,
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            task_id=task.task_id,
            department=department,
            district=district,
            role=task.role,
            needs=case.needs,
            sla_class=case.sla_class,
            emergency=case.emergency,
            summary=case.summary,
            due_at=task.due_at,
            hop=case.hop,
            requested_by=requested_by,
        ),
        department=department,
    )
    return task


def withdraw(case: Case, task: Task, *, reason: str, actor: str, now: datetime) -> None:
    task.status = "withdrawn"
    task.closed_by, task.closed_at, task.note = actor, now, reason
    emit(
        case,
        DepartmentTaskWithdrawn(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            task_id=task.task_id,
            department=task.department,
            district=task.district,
            reason=reason,
        ),
        department=task.department,
    )


def open_case(
    case_id: str,
    facts: RoutingFacts,
    routing: Routing,
    catalogue: DispatchCatalogue,
    *,
    now: datetime,
    correlation_id: str | None = None,
    summary: str = "",
    request_event_id: str | None = None,
) -> Case:
    """A new case from a help request, dispatched by the catalogue (P2.3 one door, P5.2d place of hardship)."""
    case = Case(
        case_id=case_id,
        district=facts.district,
        needs=facts.needs,
        emergency=routing.emergency,
        sla_class=routing.sla_class,
        received_at=facts.received_at,
        dispatched_at=now,
        correlation_id=correlation_id,
        summary=summary,
        facts=facts,
        decision=routing.decision,
        hop=0,
        request_event_id=request_event_id,
    )
    dispatch(case, routing, catalogue, cause="help_requested", actor=ROUTER, now=now)
    return case


def dispatch(
    case: Case,
    routing: Routing,
    catalogue: DispatchCatalogue,
    *,
    cause: str,
    actor: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Send the case where `routing` says: withdraw tasks no longer wanted, create the new ones."""
    if routing.lead is None:  # pragma: no cover - callers send such cases to arbitration
        raise ValueError("dispatch needs a lead")
    case.hop += 1
    case.status = "dispatched"
    case.sla_class, case.emergency, case.decision = routing.sla_class, routing.emergency, routing.decision
    case.dispatched_at = now
    wanted_co = {a.department for a in routing.co_handlers}
    keep: set[str] = set()
    for task in [t for t in case.tasks if t.is_open]:
        if task.role == "co_handler" and task.department in wanted_co and task.district == routing.lead.district:
            keep.add(task.department)
        else:
            withdraw(case, task, reason=f"redispatched:{cause}", actor=actor, now=now)
    lead_task = new_task(
        case,
        department=routing.lead.department,
        district=routing.lead.district,
        role="lead",
        catalogue=catalogue,
        now=now,
    )
    for co in routing.co_handlers:
        if co.department not in keep:
            new_task(
                case, department=co.department, district=co.district, role="co_handler", catalogue=catalogue, now=now
            )
    open_co = {t.department: t for t in case.tasks if t.role == "co_handler" and t.is_open}
    lead = lead_task.assignment()
    co_handlers = tuple(
        open_co[a.department].assignment() if a.department in open_co else a for a in routing.co_handlers
    )
    case.history.append(
        HistoryEntry(
            at=now,
            actor=actor,
            action=f"dispatched:{cause}",
            department=routing.lead.department,
            reason=reason,
            rule_ids=list(routing.decision.rule_ids),
        )
    )
    emit(
        case,
        CaseDispatched(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            district=routing.lead.district,
            lead=lead,
            co_handlers=co_handlers,
            needs=case.needs,
            sla_class=case.sla_class,
            emergency=case.emergency,
            decision=routing.decision,
            hop=case.hop,
            cause=cause,
            refused_departments=tuple(case.refused),
        ),
    )


def mark_queued(case: Case, task_id: str, now: datetime) -> bool:
    """The task arrived on its department's queue: its workers can now see it. False if nothing changed."""
    task = case.task(task_id)
    if task is None or task.status != "pending":
        return False
    task.status, task.queued_at = "queued", now
    return True


def reopen(case: Case, catalogue: DispatchCatalogue, *, event_id: str, actor: str, reason: str, now: datetime) -> bool:
    """A dissatisfied callback reopened a resolved case: route it again by the catalogue. False if ignored."""
    from services.router.domain.routing import decide

    if event_id in case.applied_events:
        return False
    case.applied_events.append(event_id)
    if case.status != "resolved":
        case.history.append(
            HistoryEntry(
                at=now, actor=actor, action="reopen_ignored", reason=case.status, note=reason, event_id=event_id
            )
        )
        return True
    case.outcome, case.resolved_at, case.returns, case.refused, case.arbitrated = None, None, 0, [], False
    dispatch(case, decide(catalogue, case.facts), catalogue, cause="reopened", actor=actor, now=now, reason=reason)
    case.history[-1].event_id = event_id
    return True
