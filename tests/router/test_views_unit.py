"""What the desk's API shows of a task, pure: the lead sees its co-handlers' open subtasks, first contact,
and whether the coordinator named it the owner."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from common.principal import Principal
from services.router.domain import desk
from services.router.domain.catalogue import load_catalogue
from services.router.domain.dispatching import mark_queued, open_case
from services.router.domain.routing import RoutingFacts, decide
from services.router.schemas import TaskView

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
NOW = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)
CIVIL = Principal(sub="w-civil", role="dept_worker", department="civil_affairs", district="500103")


def homeless_cold_case():
    facts = RoutingFacts(district="500103", needs=("homeless_cold",), received_at=NOW)
    case = open_case("CQ-20260215-000001", facts, decide(CATALOGUE, facts), CATALOGUE, now=NOW)
    for task in case.tasks:
        mark_queued(case, task.task_id, NOW)
    return case


def test_the_lead_sees_the_co_handlers_open_subtasks_until_they_are_closed() -> None:
    case = homeless_cold_case()
    lead, health = case.tasks
    view = TaskView.of(case, lead)
    assert [(t.task_id, t.department, t.status) for t in view.co_tasks] == [(health.task_id, "health", "queued")]
    assert TaskView.of(case, health).co_tasks == []  # a co-handler does not see the others
    desk.sign_for(case, lead.task_id, CIVIL, NOW)
    desk.resolve(case, lead.task_id, CIVIL, "sheltered", "", NOW)
    assert TaskView.of(case, lead).case_status == "awaiting_co_handlers"
    desk.waive_co_handler(case, lead.task_id, health.task_id, CIVIL, "no answer for two hours", NOW)
    view = TaskView.of(case, lead)
    assert (view.co_tasks, view.case_status) == ([], "resolved")


def test_first_contact_and_arbitration_show_on_the_task() -> None:
    case = homeless_cold_case()
    lead = case.tasks[0]
    assert TaskView.of(case, lead).first_contact_at is None
    desk.sign_for(case, lead.task_id, CIVIL, NOW)
    desk.record_progress(case, lead.task_id, CIVIL, "reached the caller", True, NOW)
    view = TaskView.of(case, lead)
    assert view.first_contact_at == NOW and view.arbitrated is False
