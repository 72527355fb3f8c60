"""A case's state changes, pure: sign-for, returns → arbitration, co-handling closure, coordinator actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.errors import DomainError, Forbidden
from common.principal import Principal
from services.router.domain import coordination, desk
from services.router.domain.case import Case, Task
from services.router.domain.catalogue import load_catalogue
from services.router.domain.dispatching import mark_queued, open_case, reopen
from services.router.domain.routing import RoutingFacts, decide

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
NOW = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)


def worker(department: str, district: str = "500103") -> Principal:
    return Principal(sub=f"w-{department}", role="dept_worker", department=department, district=district)


COORDINATOR = Principal(sub="co-1", role="coordinator", district="500103")


def new_case(*needs: str, case_id: str = "CQ-20260215-000001", **fields: object) -> Case:
    facts = RoutingFacts(district="500103", needs=needs, received_at=NOW, **fields)
    case = open_case(case_id, facts, decide(CATALOGUE, facts), CATALOGUE, now=NOW)
    for task in case.tasks:
        mark_queued(case, task.task_id, NOW)
    case.outbox.clear()
    return case


# Some status checks compare tuples: mypy keeps `case.status` narrowed across the calls that change it.


def lead_of(case: Case) -> Task:
    lead = case.lead_task()
    assert lead is not None, f"{case.case_id} has no lead"
    return lead


def types(case: Case) -> list[str]:
    return [entry["body"]["type"] for entry in case.outbox]


def test_open_case_makes_one_task_per_department_and_one_dispatch_event_P2_3() -> None:
    facts = RoutingFacts(district="500103", needs=("homeless_cold",), received_at=NOW)
    case = open_case("CQ-20260215-000001", facts, decide(CATALOGUE, facts), CATALOGUE, now=NOW)
    assert [(t.department, t.role, t.status) for t in case.tasks] == [
        ("civil_affairs", "lead", "pending"),
        ("health", "co_handler", "pending"),
    ]
    assert types(case) == ["dept.task", "dept.task", "case.dispatched"]
    assert [e.get("department") for e in case.outbox] == ["civil_affairs", "health", None]
    dispatched = case.outbox[-1]["body"]
    assert dispatched["decision"]["rule_ids"] == ["R-P2.2-HOMELESS-COLD"]
    assert dispatched["lead"]["task_id"] == case.tasks[0].task_id  # notify can clock each assignment
    assert dispatched["co_handlers"][0]["task_id"] == case.tasks[1].task_id
    assert case.tasks[0].due_at == NOW + timedelta(hours=2)  # the emergency class's task deadline


def test_a_task_is_visible_to_workers_once_it_arrived_on_the_queue() -> None:
    facts = RoutingFacts(district="500103", needs=("other",), received_at=NOW)
    case = open_case("CQ-20260215-000001", facts, decide(CATALOGUE, facts), CATALOGUE, now=NOW)
    task_id = case.tasks[0].task_id
    with pytest.raises(DomainError):
        desk.sign_for(case, task_id, worker("civil_affairs"), NOW)
    assert mark_queued(case, task_id, NOW) is True
    assert mark_queued(case, task_id, NOW) is False  # redelivered: nothing changes


def test_sign_for_is_only_for_the_own_department_and_district() -> None:
    case = new_case("other")
    task_id = case.tasks[0].task_id
    with pytest.raises(Forbidden):
        desk.sign_for(case, task_id, worker("education"), NOW)
    with pytest.raises(Forbidden):
        desk.sign_for(case, task_id, worker("civil_affairs", "500101"), NOW)
    desk.sign_for(case, task_id, worker("civil_affairs"), NOW)
    desk.sign_for(case, task_id, worker("civil_affairs"), NOW)  # twice: no second event
    assert case.tasks[0].status == "signed_for" and types(case) == ["case.signed_for"]


def test_return_redispatches_without_the_refusing_department() -> None:
    case = new_case("price_gouging")
    lead = case.tasks[0]
    step = desk.return_task(
        case, lead.task_id, worker("market_regulation"), "not_our_responsibility", "not ours", CATALOGUE, 2, NOW
    )
    assert step == "redispatched"
    assert lead.status == "returned" and case.refused == ["market_regulation"] and case.returns == 1
    new_lead = lead_of(case)
    assert new_lead.department == "civil_affairs" and new_lead.hop == 2
    assert types(case) == ["case.returned", "dept.task", "case.dispatched"]
    assert case.outbox[-1]["body"]["cause"] == "returned"
    assert case.outbox[-1]["body"]["refused_departments"] == ["market_regulation"]
    assert [h.action for h in case.history][-2:] == ["returned", "dispatched:returned"]


def test_return_after_two_refusals_goes_to_the_coordinator_for_arbitration() -> None:
    case = new_case("price_gouging")
    desk.return_task(
        case, case.tasks[0].task_id, worker("market_regulation"), "not_our_responsibility", "x", CATALOGUE, 2, NOW
    )
    mark_queued(case, lead_of(case).task_id, NOW)
    step = desk.return_task(
        case, lead_of(case).task_id, worker("civil_affairs"), "not_our_responsibility", "y", CATALOGUE, 2, NOW
    )
    assert step == "arbitration" and case.status == "arbitration" and case.returns == 2
    assert types(case)[-1] == "case.arbitration_requested"
    coordination.settle_arbitration(case, COORDINATOR, "commerce", None, "commerce owns supply", CATALOGUE, NOW)
    assert (case.status, lead_of(case).department, case.arbitrated) == ("dispatched", "commerce", True)
    assert types(case)[-2:] == ["dept.task", "case.arbitration_settled"]
    mark_queued(case, lead_of(case).task_id, NOW)
    with pytest.raises(DomainError, match="cannot be returned"):
        desk.return_task(
            case, lead_of(case).task_id, worker("commerce"), "not_our_responsibility", "z", CATALOGUE, 2, NOW
        )


def test_wrong_district_goes_straight_to_arbitration_and_a_reassignment_settles_it() -> None:
    case = new_case("other")
    step = desk.return_task(
        case, case.tasks[0].task_id, worker("civil_affairs"), "wrong_district", "elsewhere", CATALOGUE, 2, NOW
    )
    assert step == "arbitration" and case.status == "arbitration"
    city = Principal(sub="co-city", role="coordinator", district="city")
    coordination.reassign(case, city, "civil_affairs", "500101", "happened in Wanzhou", CATALOGUE, NOW)
    assert (case.status, case.arbitrated, lead_of(case).district) == ("dispatched", True, "500101")


def test_case_resolves_when_lead_resolved_and_every_co_handler_done_or_waived() -> None:
    case = new_case("stranded_person")  # civil affairs leads; hrss and education co-handle
    lead, hrss, education = case.tasks
    desk.sign_for(case, lead.task_id, worker("civil_affairs"), NOW)
    desk.resolve(case, lead.task_id, worker("civil_affairs"), "lodged", "placed in shelter", NOW)
    assert case.status == "awaiting_co_handlers"
    desk.sign_for(case, hrss.task_id, worker("hrss"), NOW)
    desk.resolve(case, hrss.task_id, worker("hrss"), "job found", "", NOW)
    assert case.status == "awaiting_co_handlers"
    with pytest.raises(Forbidden):
        desk.waive_co_handler(case, lead.task_id, education.task_id, worker("education"), "x", NOW)
    desk.waive_co_handler(case, lead.task_id, education.task_id, worker("civil_affairs"), "not a student", NOW)
    assert (case.status, case.outcome) == ("resolved", "lodged")
    assert types(case)[-2:] == ["case.co_handler_closed", "case.resolved"]


def test_lead_asks_another_department_to_co_handle_with_a_deadline() -> None:
    case = new_case("other")
    lead = case.tasks[0]
    due = NOW + timedelta(days=1)
    co = desk.request_co_handling(case, lead.task_id, worker("civil_affairs"), "housing", "roof", due, CATALOGUE, NOW)
    assert (co.department, co.role, co.due_at, co.requested_by) == ("housing", "co_handler", due, "civil_affairs")
    assert types(case) == ["dept.task", "case.co_handling_requested"]
    with pytest.raises(DomainError, match="already handling"):
        desk.request_co_handling(case, lead.task_id, worker("civil_affairs"), "housing", "", None, CATALOGUE, NOW)
    mark_queued(case, co.task_id, NOW)
    with pytest.raises(DomainError, match="only the lead"):
        desk.request_co_handling(case, co.task_id, worker("housing"), "health", "", None, CATALOGUE, NOW)


def test_coordinator_changes_the_lead_to_a_co_handler() -> None:
    case = new_case("disaster_housing")  # housing leads, emergency management co-handles
    coordination.change_lead(case, COORDINATOR, "emergency_management", "mostly relief", CATALOGUE, NOW)
    assert lead_of(case).department == "emergency_management"
    assert [t.department for t in case.open_co_tasks()] == ["housing"]
    assert types(case)[-1] == "case.reassigned" and case.outbox[-1]["body"]["kind"] == "change_lead"


def test_coordinator_of_another_district_cannot_act() -> None:
    case = new_case("other")
    other = Principal(sub="co-2", role="coordinator", district="500101")
    with pytest.raises(Forbidden):
        coordination.reassign(case, other, "education", None, "x", CATALOGUE, NOW)
    city = Principal(sub="co-city", role="coordinator", district="city")
    coordination.reassign(case, city, "education", "500101", "wrong district", CATALOGUE, NOW)
    assert lead_of(case).district == "500101" and case.district == "500101"


def test_merge_keeps_the_child_link_and_withdraws_its_tasks() -> None:
    parent, child = new_case("other"), new_case("other", case_id="CQ-20260215-000002")
    coordination.merge_into(child, parent, COORDINATOR, "same caller", NOW)
    assert child.status == "merged" and child.merged_into == parent.case_id
    assert all(t.status == "withdrawn" for t in child.tasks)
    assert types(child) == ["dept.task_withdrawn", "case.merged"]
    assert coordination.link_child(parent, child.case_id, COORDINATOR, NOW) is True
    assert coordination.link_child(parent, child.case_id, COORDINATOR, NOW) is False
    assert parent.children == [child.case_id]


def test_a_reopened_case_is_routed_again_once_per_event() -> None:
    case = new_case("other")
    lead = case.tasks[0]
    desk.sign_for(case, lead.task_id, worker("civil_affairs"), NOW)
    desk.resolve(case, lead.task_id, worker("civil_affairs"), "done", "", NOW)
    assert case.status == "resolved"
    assert reopen(case, CATALOGUE, event_id="e-1", actor="hotline:op", reason="dissatisfied", now=NOW) is True
    assert (case.status, lead_of(case).task_id != lead.task_id) == ("dispatched", True)
    assert case.outbox[-1]["body"]["cause"] == "reopened"
    assert reopen(case, CATALOGUE, event_id="e-1", actor="hotline:op", reason="again", now=NOW) is False


def test_case_document_round_trips() -> None:
    case = new_case("homeless_cold")
    doc = case.to_document()
    assert doc["_id"] == case.case_id and "civil_affairs|500103|queued" in doc["queue_keys"]
    assert Case.from_document(doc) == case


def test_first_contact_is_kept_on_the_task_and_marked_in_the_history() -> None:
    case = new_case("homeless_cold")
    lead = case.tasks[0]
    desk.sign_for(case, lead.task_id, worker("civil_affairs"), NOW)
    desk.record_progress(case, lead.task_id, worker("civil_affairs"), "on the way", False, NOW)
    assert lead.first_contact_at is None and case.history[-1].first_contact is None
    later = NOW + timedelta(minutes=20)
    desk.record_progress(case, lead.task_id, worker("civil_affairs"), "phoned the caller", True, later)
    desk.record_progress(case, lead.task_id, worker("civil_affairs"), "phoned again", True, later + timedelta(hours=1))
    contacted = case.tasks[0]  # mypy keeps `lead.first_contact_at` narrowed to None from above
    assert (contacted.first_contact_at, contacted.first_contact_by) == (later, "w-civil_affairs")  # the first counts
    assert [h.first_contact for h in case.history if h.action == "progress"] == [None, True, True]
    assert [e["body"]["first_contact"] for e in case.outbox if e["body"]["type"] == "case.progress"] == [
        False,
        True,
        True,
    ]
    assert Case.from_document(case.to_document()).tasks[0].first_contact_at == later


def test_a_task_is_resolved_only_once_signed_for_and_with_an_outcome() -> None:
    """P2.3: the department signs for (签收) before it resolves; the outcome is required."""
    case = new_case("stranded_person")
    lead, hrss, _ = case.tasks
    for task, who in [(lead, worker("civil_affairs")), (hrss, worker("hrss"))]:
        with pytest.raises(DomainError) as caught:
            desk.resolve(case, task.task_id, who, "done", "", NOW)
        assert caught.value.field == "task_id" and "sign for" in caught.value.message_en
        assert task.status == "queued"
    desk.sign_for(case, lead.task_id, worker("civil_affairs"), NOW)
    with pytest.raises(DomainError) as blank:
        desk.resolve(case, lead.task_id, worker("civil_affairs"), "  ", "", NOW)
    assert (blank.value.field, blank.value.status) == ("outcome", 422)
    assert lead.status == "signed_for"


def test_a_co_handling_due_time_in_the_past_or_years_ahead_is_refused() -> None:
    """The co-handler's due time becomes the caller's expected time: never in the past."""
    from pydantic import ValidationError

    from services.router.api import CoHandlingBody

    for due in ["2000-01-01T00:00:00Z", (NOW.replace(year=2099)).isoformat()]:
        with pytest.raises(ValidationError) as caught:
            CoHandlingBody.model_validate({"department": "hrss", "due_at": due})
        assert caught.value.errors()[0]["loc"] == ("due_at",)
    ahead = datetime.now(UTC) + timedelta(days=2)
    assert CoHandlingBody.model_validate({"department": "hrss", "due_at": ahead.isoformat()}).due_at == ahead


def test_p23_the_leads_resolution_while_co_handlers_work_is_its_own_event() -> None:
    """P2.3: the lead's part done is published (case.lead_resolved, naming the open co-handler subtasks);
    case.resolved only follows once every co-handler is done or waived."""
    case = new_case("stranded_person")  # civil affairs leads; hrss and education co-handle
    lead, hrss, education = case.tasks
    desk.sign_for(case, lead.task_id, worker("civil_affairs"), NOW)
    desk.sign_for(case, hrss.task_id, worker("hrss"), NOW)
    desk.resolve(case, hrss.task_id, worker("hrss"), "job found", "", NOW)
    desk.resolve(case, lead.task_id, worker("civil_affairs"), "lodged", "placed in shelter", NOW)
    event = case.outbox[-1]["body"]
    assert event["type"] == "case.lead_resolved" and types(case).count("case.resolved") == 0
    assert (event["task_id"], event["department"], event["outcome"]) == (lead.task_id, "civil_affairs", "lodged")
    assert [(a["department"], a["task_id"]) for a in event["awaiting"]] == [("education", education.task_id)]
    desk.waive_co_handler(case, lead.task_id, education.task_id, worker("civil_affairs"), "not needed", NOW)
    assert types(case)[-2:] == ["case.co_handler_closed", "case.resolved"]


def test_a_lead_without_open_co_handlers_resolves_the_case_at_once_with_no_lead_resolved_event() -> None:
    case = new_case("other")
    lead = case.tasks[0]
    desk.sign_for(case, lead.task_id, worker("civil_affairs"), NOW)
    desk.resolve(case, lead.task_id, worker("civil_affairs"), "done", "", NOW)
    assert "case.lead_resolved" not in types(case) and types(case)[-1] == "case.resolved"
