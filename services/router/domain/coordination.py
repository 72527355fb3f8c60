"""A coordinator's actions: settle arbitration, reassign, change the lead, merge duplicates (并单)."""

from __future__ import annotations

from datetime import datetime

from common.principal import Principal
from contracts.codes import is_department, is_district
from contracts.events.router import ArbitrationSettled, Assignment, CaseReassigned, CasesMerged
from services.router.domain.case import Case, HistoryEntry
from services.router.domain.catalogue import DispatchCatalogue
from services.router.domain.dispatching import emit, new_task, withdraw
from services.router.domain.errors import not_your_district, wrong_state

FINAL = ("resolved", "merged")


def in_scope(case: Case, coordinator: Principal) -> None:
    """A district coordinator acts on their district's cases; a city coordinator on all."""
    if not coordinator.can_see_district(case.district):
        raise not_your_district(case.case_id)


def _target(department: str, district: str) -> Assignment:
    if not is_department(department):
        raise wrong_state(f"部门代码 {department} 不存在", f"unknown department {department}", field="department")
    if not is_district(district):
        raise wrong_state(f"区县代码 {district} 不存在", f"unknown district {district}", field="district")
    return Assignment(department=department, district=district, role="lead")


def _open(case: Case) -> None:
    if case.status in FINAL:
        raise wrong_state(
            f"案件已是 {case.status}，不能再调整", f"case is {case.status}; it cannot be changed", field="case_id"
        )


def _replace_lead(
    case: Case, lead: Assignment, coordinator: Principal, catalogue: DispatchCatalogue, now: datetime, reason: str
) -> Assignment | None:
    previous = case.lead_task()
    if previous is not None and previous.is_open:
        withdraw(case, previous, reason=reason, actor=coordinator.sub, now=now)
    case.hop += 1
    case.district = lead.district
    new_task(case, department=lead.department, district=lead.district, role="lead", catalogue=catalogue, now=now)
    case.status = "dispatched"
    return previous.assignment() if previous is not None else None


def settle_arbitration(
    case: Case,
    coordinator: Principal,
    department: str,
    district: str | None,
    note: str,
    catalogue: DispatchCatalogue,
    now: datetime,
) -> None:
    """The coordinator names the owner of a case that was returned too often; it can no longer be returned."""
    in_scope(case, coordinator)
    if case.status != "arbitration":
        raise wrong_state("案件不在仲裁中", "the case is not waiting for arbitration", field="case_id")
    lead = _target(department, district or case.district)
    _replace_lead(case, lead, coordinator, catalogue, now, "arbitration")
    lead = case.tasks[-1].assignment()
    case.arbitrated = True
    case.history.append(
        HistoryEntry(at=now, actor=coordinator.sub, action="arbitration_settled", department=department, note=note)
    )
    emit(
        case,
        ArbitrationSettled(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=coordinator.sub,
            department=department,
            district=lead.district,
            lead=lead,
            note=note,
        ),
    )


def reassign(
    case: Case,
    coordinator: Principal,
    department: str,
    district: str | None,
    reason: str,
    catalogue: DispatchCatalogue,
    now: datetime,
) -> None:
    """Send the case to another lead department (or the right district)."""
    in_scope(case, coordinator)
    _open(case)
    lead = _target(department, district or case.district)
    in_arbitration = case.status == "arbitration"
    previous = _replace_lead(case, lead, coordinator, catalogue, now, "reassigned")
    lead = case.tasks[-1].assignment()
    if in_arbitration:  # naming an owner while arbitrating settles it
        case.arbitrated = True
    case.history.append(
        HistoryEntry(at=now, actor=coordinator.sub, action="reassigned", department=department, reason=reason)
    )
    emit(
        case,
        CaseReassigned(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=coordinator.sub,
            department=department,
            district=lead.district,
            lead=lead,
            reason=reason,
            previous_lead=previous,
            kind="reassign",
        ),
    )


def change_lead(
    case: Case, coordinator: Principal, department: str, reason: str, catalogue: DispatchCatalogue, now: datetime
) -> None:
    """A co-handler becomes the lead; the old lead stays on as a co-handler."""
    in_scope(case, coordinator)
    _open(case)
    co = next((t for t in case.open_co_tasks() if t.department == department), None)
    if co is None:
        raise wrong_state(
            f"{department} 不是本案的协办部门", f"{department} is not co-handling this case", field="department"
        )
    withdraw(case, co, reason="became lead", actor=coordinator.sub, now=now)
    lead = Assignment(department=department, district=co.district, role="lead")
    previous = _replace_lead(case, lead, coordinator, catalogue, now, "lead changed")
    lead = case.tasks[-1].assignment()
    if previous is not None:
        new_task(
            case,
            department=previous.department,
            district=previous.district,
            role="co_handler",
            catalogue=catalogue,
            now=now,
            requested_by=department,
        )
    case.history.append(
        HistoryEntry(at=now, actor=coordinator.sub, action="lead_changed", department=department, reason=reason)
    )
    emit(
        case,
        CaseReassigned(
            occurred_at=now,
            case_id=case.case_id,
            correlation_id=case.correlation_id,
            actor=coordinator.sub,
            department=department,
            district=lead.district,
            lead=lead,
            reason=reason,
            previous_lead=previous,
            kind="change_lead",
        ),
    )


def merge_into(child: Case, parent: Case, coordinator: Principal, note: str, now: datetime) -> None:
    """并单: the child case closes into the parent; its open tasks are withdrawn. See `link_child`."""
    in_scope(child, coordinator)
    in_scope(parent, coordinator)
    if child.case_id == parent.case_id:
        raise wrong_state("不能与自身并单", "a case cannot be merged into itself", field="into_case_id")
    if parent.status == "merged":
        raise wrong_state("目标案件已被并入其他案件", "the target case was itself merged", field="into_case_id")
    if child.status == "merged":
        if child.merged_into == parent.case_id:
            return
        raise wrong_state("案件已并入其他案件", "the case was already merged elsewhere", field="case_id")
    _open(child)
    for task in [t for t in child.tasks if t.is_open]:
        withdraw(child, task, reason=f"merged into {parent.case_id}", actor=coordinator.sub, now=now)
    child.status, child.merged_into = "merged", parent.case_id
    child.history.append(HistoryEntry(at=now, actor=coordinator.sub, action="merged", reason=parent.case_id, note=note))
    emit(
        child,
        CasesMerged(
            occurred_at=now,
            case_id=child.case_id,
            correlation_id=child.correlation_id,
            actor=coordinator.sub,
            district=child.district,
            into_case_id=parent.case_id,
        ),
    )


def link_child(parent: Case, child_id: str, coordinator: Principal, now: datetime) -> bool:
    """The parent keeps a link to every case merged into it; False when already linked."""
    if child_id in parent.children:
        return False
    parent.children.append(child_id)
    parent.history.append(HistoryEntry(at=now, actor=coordinator.sub, action="child_merged", reason=child_id))
    return True
