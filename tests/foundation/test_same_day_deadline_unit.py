"""P4.1 same day (日清零): one definition of the deadline (`contracts.deadlines`), computed alike by the router's
department tasks and notify's clocks from their own policy data, and checked against the provision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.deadlines import calendar_due
from contracts.events.base import BUSINESS_TZ
from services.notify.domain.case import apply
from services.notify.domain.policy import load_policy
from services.router.domain.catalogue import load_catalogue
from services.router.domain.dispatching import open_case
from services.router.domain.routing import RoutingFacts, decide
from tests.support.events import dispatched, new_case_id

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
POLICY = load_policy()


def cq(hour: int, minute: int = 0, day: int = 15) -> datetime:
    return datetime(2026, 2, day, hour, minute, tzinfo=BUSINESS_TZ)


def router_due(at: datetime) -> datetime:
    """The lead task's deadline of an institution-hazard call routed at `at`."""
    facts = RoutingFacts(district="500103", needs=("institution_hazard",), received_at=at)
    case = open_case(new_case_id(), facts, decide(CATALOGUE, facts), CATALOGUE, now=at)
    [task] = case.tasks
    assert case.sla_class == "same_day" and task.due_at is not None
    return task.due_at


def notify_due(at: datetime) -> tuple[datetime, datetime]:
    """The citizen clock's and the lead department clock's resolution deadlines in notify."""
    state = apply(None, dispatched(new_case_id(), at=at, sla_class="same_day"), POLICY)
    assert state.citizen is not None
    [department] = state.assignments
    return state.citizen.due("resolution"), department.due("resolution")


def test_p4_1_a_hazard_reported_at_15_00_is_due_at_midnight_in_router_and_notify():
    """P4.1: reported at 15:00 -> cleared the same day: due at 24:00 that day, not 03:00 the next."""
    midnight = cq(0, day=16)
    assert router_due(cq(15)) == midnight
    assert notify_due(cq(15)) == (midnight, midnight)


@pytest.mark.parametrize(("hour", "minute"), [(0, 5), (8, 0), (15, 0), (19, 59), (20, 0), (22, 30), (23, 50)])
def test_p4_1_router_and_notify_compute_the_same_same_day_deadline(hour, minute):
    """P4.1: whatever the hour, the router's task and notify's clocks are due at the same moment: the end of
    the local day, or 4 hours after a late report (the floor both policy files set)."""
    at = cq(hour, minute)
    expected = max(cq(0, day=16), at + timedelta(hours=4))
    assert router_due(at) == expected
    assert notify_due(at) == (expected, expected)


def test_p4_1_the_end_of_the_day_is_the_business_days_midnight_whatever_the_clock_zone():
    """P4.1: a start given in UTC is placed in Chongqing's day (16:30 UTC is 00:30 next day there)."""
    utc_late = datetime(2026, 2, 15, 16, 30, tzinfo=UTC)
    assert calendar_due(utc_late, "end_of_day", BUSINESS_TZ) == cq(0, day=17)
    assert calendar_due(cq(9), "end_of_month", BUSINESS_TZ) == datetime(2026, 3, 1, tzinfo=BUSINESS_TZ)
    with pytest.raises(ValueError, match="timezone"):
        calendar_due(datetime(2026, 2, 15, 9), "end_of_day", BUSINESS_TZ)
