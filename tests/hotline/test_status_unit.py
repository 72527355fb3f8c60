"""The caller-facing status, projected from downstream events (P6.2: assistance comes in time)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.hotline.domain import project_status

pytestmark = pytest.mark.unit

T0 = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)
CASE = "CQ-20260215-000001"


def at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def dispatched(minutes: int = 1, department: str = "civil_affairs") -> dict:
    return {
        "type": "case.dispatched",
        "case_id": CASE,
        "occurred_at": at(minutes),
        "lead": {"department": department, "district": "500103", "role": "lead"},
    }


def project(*events: dict):
    return project_status(CASE, received_at=T0, emergency=False, events=list(events))


def test_a_new_case_is_received_and_open() -> None:
    status = project()
    assert (status.status, status.open, status.open311_status) == ("received", True, "open")


def test_dispatch_names_the_agency_in_chinese_and_english() -> None:
    status = project(dispatched())
    assert status.status == "dispatched"
    assert status.agency and status.agency.name_zh == "渝中区民政部门" and "Civil affairs" in status.agency.name_en


def test_lifecycle_runs_signed_for_in_progress_resolved_closed() -> None:
    events = [
        dispatched(1),
        {"type": "case.signed_for", "case_id": CASE, "occurred_at": at(2), "task_id": "t"},
        {"type": "case.progress", "case_id": CASE, "occurred_at": at(3), "note": "x"},
    ]
    assert project(*events).status == "in_progress"
    resolved = project(*events, {"type": "case.resolved", "case_id": CASE, "occurred_at": at(4), "outcome": "ok"})
    assert (resolved.status, resolved.open, resolved.open311_status) == ("resolved", True, "closed")
    closed = project(*events, {"type": "case.closed", "case_id": CASE, "occurred_at": at(5)})
    assert (closed.status, closed.open) == ("closed", False)


def test_events_are_applied_in_the_order_they_happened_not_arrived() -> None:
    signed = {"type": "case.signed_for", "case_id": CASE, "occurred_at": at(2), "task_id": "t"}
    assert project(signed, dispatched(1)).status == "signed_for"


def test_a_return_redispatches_and_the_new_lead_is_shown() -> None:
    status = project(
        dispatched(1), {"type": "case.returned", "case_id": CASE, "occurred_at": at(2)}, dispatched(3, "hrss")
    )
    assert status.status == "dispatched" and status.agency and status.agency.department == "hrss"


def test_expected_time_comes_from_the_citizen_resolution_clock() -> None:
    due = (T0 + timedelta(days=3)).isoformat()
    sla = {
        "type": "sla.warning",
        "case_id": CASE,
        "occurred_at": at(5),
        "clock": "citizen",
        "target": "resolution",
        "due_at": due,
    }
    other_clock = {**sla, "clock": "department", "due_at": (T0 + timedelta(days=1)).isoformat()}
    assert project(dispatched(), sla, other_clock).expected_at == T0 + timedelta(days=3)


def test_grants_show_as_progress_notes() -> None:
    status = project(dispatched(), {"type": "grant.paid", "case_id": CASE, "occurred_at": at(9), "amount_yuan": "1240"})
    assert status.status == "in_progress" and "1240" in status.history[-1].text_zh


def test_unknown_event_types_are_tolerated() -> None:
    status = project(dispatched(), {"type": "case.something_new", "case_id": CASE, "occurred_at": at(9)})
    assert status.status == "dispatched" and status.history[-1].type == "case.something_new"


def test_merge_keeps_child_links_both_ways() -> None:
    merge = {"type": "case.merged", "case_id": CASE, "into_case_id": "CQ-20260215-000009", "occurred_at": at(5)}
    child = project(merge)
    assert (child.status, child.merged_into, child.open) == ("merged", "CQ-20260215-000009", False)
    parent = project_status("CQ-20260215-000009", received_at=T0, emergency=False, events=[merge])
    assert parent.children == [CASE] and parent.status == "received"


def test_dissatisfied_callback_reopens_the_case() -> None:
    events = [
        dispatched(),
        {"type": "case.resolved", "case_id": CASE, "occurred_at": at(4)},
        {"type": "hotline.callback_recorded", "case_id": CASE, "occurred_at": at(6), "satisfaction": "dissatisfied"},
        {"type": "hotline.case_reopened", "case_id": CASE, "occurred_at": at(6), "reason": "x"},
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
    task_due = (T0 + timedelta(days=5)).isoformat()
    event = dispatched()
    event["lead"]["due_at"] = task_due
    status = project(event)
    assert (status.expected_at, status.expected_source) == (T0 + timedelta(days=5), "dispatch")
    sla = {
        "type": "sla.warning",
        "case_id": CASE,
        "occurred_at": at(2),
        "clock": "citizen",
        "target": "resolution",
        "due_at": (T0 + timedelta(days=3)).isoformat(),
    }
    later_dispatch = dispatched(9)
    later_dispatch["lead"]["due_at"] = (T0 + timedelta(days=9)).isoformat()
    status = project(event, sla, later_dispatch)
    assert (status.expected_at, status.expected_source) == (T0 + timedelta(days=3), "sla")
