"""The caller-facing status, projected from downstream events (P6.2: assistance comes in time)."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from contracts.events.hotline import CallbackRecorded, CaseReopened
from contracts.events.notify import Clock, SlaWarningRaised
from contracts.events.relief import GrantPaid
from contracts.events.router import (
    Assignment,
    CaseClosed,
    CaseDispatched,
    CaseProgressRecorded,
    CaseResolved,
    CaseReturned,
    CaseSignedFor,
    CasesMerged,
    Decision,
    LeadResolved,
)
from services.hotline.domain import OtherUpdate, StatusEvent, project_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)
CASE = "CQ-20260215-000001"


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def dispatched(minutes: int = 1, department: str = "civil_affairs", lead_due: datetime | None = None) -> CaseDispatched:
    return CaseDispatched(
        case_id=CASE,
        occurred_at=at(minutes),
        district="500103",
        lead=Assignment(department=department, district="500103", role="lead", due_at=lead_due),
        needs=("temp_assist_major",),
        sla_class="standard",
        decision=Decision(rule_ids=("R-TEST",)),
    )


def signed_for(minutes: int) -> CaseSignedFor:
    return CaseSignedFor(case_id=CASE, occurred_at=at(minutes), task_id="t", actor="w1")


def resolved(minutes: int) -> CaseResolved:
    return CaseResolved(case_id=CASE, occurred_at=at(minutes), actor="w1", outcome="ok")


def citizen_clock(minutes: int, due: datetime, clock: Clock = "citizen") -> SlaWarningRaised:
    return SlaWarningRaised(
        case_id=CASE,
        occurred_at=at(minutes),
        clock=clock,
        target="resolution",
        district="500103",
        due_at=due,
        sla_class="standard",
        share_elapsed=0.5,
    )


def project(*events: StatusEvent):
    return project_status(CASE, received_at=T0, emergency=False, events=list(events))


def test_a_new_case_is_received_and_open() -> None:
    status = project()
    assert (status.status, status.open, status.open311_status) == ("received", True, "open")


def test_dispatch_names_the_agency_in_chinese_and_english() -> None:
    status = project(dispatched())
    assert status.status == "dispatched"
    assert status.agency and status.agency.name_zh == "渝中区民政部门" and "Civil affairs" in status.agency.name_en


def test_lifecycle_runs_signed_for_in_progress_resolved_closed() -> None:
    events: list[StatusEvent] = [
        dispatched(1),
        signed_for(2),
        CaseProgressRecorded(case_id=CASE, occurred_at=at(3), task_id="t", actor="w1", note="x"),
    ]
    assert project(*events).status == "in_progress"
    done = project(*events, resolved(4))
    assert (done.status, done.open, done.open311_status) == ("resolved", True, "closed")
    closed = project(*events, CaseClosed(case_id=CASE, occurred_at=at(5), actor="w1"))
    assert (closed.status, closed.open) == ("closed", False)


def test_events_are_applied_in_the_order_they_happened_not_arrived() -> None:
    assert project(signed_for(2), dispatched(1)).status == "signed_for"


def test_a_return_redispatches_and_the_new_lead_is_shown() -> None:
    returned = CaseReturned(case_id=CASE, occurred_at=at(2), actor="w1", task_id="t", reason="not_our_responsibility")
    status = project(dispatched(1), returned, dispatched(3, "hrss"))
    assert status.status == "dispatched" and status.agency and status.agency.department == "hrss"


def test_expected_time_comes_from_the_citizen_resolution_clock() -> None:
    sla = citizen_clock(5, T0 + timedelta(days=3))
    other_clock = citizen_clock(5, T0 + timedelta(days=1), clock="department")
    assert project(dispatched(), sla, other_clock).expected_at == T0 + timedelta(days=3)


def test_grants_show_as_progress_notes() -> None:
    paid = GrantPaid(
        case_id=CASE,
        occurred_at=at(9),
        grant_id="g1",
        rule_id="P5.2c",
        district="500103",
        amount_yuan=Decimal("1240"),
        payment_reference="PAY-1",
    )
    status = project(dispatched(), paid)
    assert status.status == "in_progress" and "1240" in status.history[-1].text_zh


def test_unknown_event_types_are_tolerated() -> None:
    later = OtherUpdate.model_validate(
        {"type": "case.something_new", "case_id": CASE, "event_id": "e-9", "occurred_at": at(9).isoformat()}
    )
    status = project(dispatched(), later)
    assert status.status == "dispatched" and status.history[-1].type == "case.something_new"


def test_merge_keeps_child_links_both_ways() -> None:
    merge = CasesMerged(case_id=CASE, into_case_id="CQ-20260215-000009", occurred_at=at(5), actor="w1")
    child = project(merge)
    assert (child.status, child.merged_into, child.open) == ("merged", "CQ-20260215-000009", False)
    parent = project_status("CQ-20260215-000009", received_at=T0, emergency=False, events=[merge])
    assert parent.children == [CASE] and parent.status == "received"


def test_dissatisfied_callback_reopens_the_case() -> None:
    events: list[StatusEvent] = [
        dispatched(),
        resolved(4),
        CallbackRecorded(case_id=CASE, occurred_at=at(6), operator_id="op-1", satisfaction="dissatisfied"),
        CaseReopened(case_id=CASE, occurred_at=at(6), operator_id="op-1", reason="x"),
    ]
    status = project(*events)
    assert (status.status, status.satisfaction, status.reopened_times, status.open311_status) == (
        "reopened",
        "dissatisfied",
        1,
        "open",
    )
    assert project(*events, dispatched(8)).status == "dispatched"


def test_the_lead_task_deadline_is_the_expected_time_until_the_citizen_clock_is_known() -> None:
    event = dispatched(lead_due=T0 + timedelta(days=5))
    status = project(event)
    assert (status.expected_at, status.expected_source) == (T0 + timedelta(days=5), "dispatch")
    sla = citizen_clock(2, T0 + timedelta(days=3))
    later_dispatch = dispatched(9, lead_due=T0 + timedelta(days=9))
    status = project(event, sla, later_dispatch)
    assert (status.expected_at, status.expected_source) == (T0 + timedelta(days=3), "sla")


def test_a_callback_belongs_to_its_resolution_and_a_new_resolution_takes_its_own() -> None:
    callback = CallbackRecorded(case_id=CASE, occurred_at=at(6), operator_id="op-1", satisfaction="satisfied")
    assert not project(dispatched(), resolved(4)).called_back
    assert project(dispatched(), resolved(4), callback).called_back
    assert not project(dispatched(), resolved(4), callback, resolved(8)).called_back


def test_p23_the_leads_resolution_with_co_handlers_still_working_keeps_the_case_in_progress_for_the_caller() -> None:
    """P2.3: the caller's case is resolved when every department is done, not when the lead is."""
    lead_done = LeadResolved(
        case_id=CASE,
        occurred_at=at(3),
        actor="w1",
        task_id="t",
        outcome="已安置",
        awaiting=(Assignment(department="health", district="500103", role="co_handler", task_id="t2"),),
    )
    status = project(dispatched(1), signed_for(2), lead_done)
    assert (status.status, status.open311_status, status.resolved_at) == ("in_progress", "open", None)
    assert status.history[-1].type == "case.lead_resolved" and "协办部门仍在办理" in status.history[-1].text_zh
    assert project(dispatched(1), signed_for(2), lead_done, resolved(5)).status == "resolved"
