"""Route provisions (POLICY.md `route`): the hotline accepts such calls and routes them to the named department
of the place of hardship."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.router.domain.catalogue import load_catalogue
from services.router.domain.routing import RoutingFacts, decide

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
RECEIVED = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)


def route(need: str, **fields: object) -> tuple[str | None, list[str]]:
    routing = decide(CATALOGUE, RoutingFacts(district="500106", needs=(need,), received_at=RECEIVED, **fields))
    assert routing.lead is None or routing.lead.district == "500106"  # the place of hardship acts
    return (routing.lead.department if routing.lead else None), [a.department for a in routing.co_handlers]


def test_p1_1_essential_goods_shortage_goes_to_commerce():
    """P1.1: shortages, or outlets not covering a township ("rice bag / vegetable basket"), to commerce."""
    assert route("supply_shortage") == ("commerce", [])


def test_p3_1_winter_spring_relief_goes_to_emergency_management_with_civil_affairs():
    """P3.1: disaster victims' food, clothing and bedding: emergency management, linked with civil affairs
    (temporary assistance and dibao where eligible)."""
    assert route("disaster_relief") == ("emergency_management", ["civil_affairs"])


def test_p3_1_a_disaster_victim_brings_emergency_management_into_any_case():
    """P3.1: a caller who is a disaster victim asking for another aid: emergency management co-handles."""
    assert route("housing_aid", special_groups=("disaster_victim",)) == ("housing", ["emergency_management"])


def test_p3_2_rebuilding_damaged_homes_goes_to_housing_with_emergency_management():
    """P3.2: rebuilding disaster-damaged homes and housing people until rebuilt."""
    assert route("disaster_housing") == ("housing", ["emergency_management"])


def test_p5_3_family_doctor_follow_up_goes_to_the_health_commission():
    """P5.3: family-doctor teams follow up the four key groups: routed to the health commission."""
    assert route("chronic_followup") == ("health", [])


def test_p5_3_stranded_workers_and_students_go_to_civil_affairs_with_hrss_and_education():
    """P5.3: temporary lodging, food and winter clothes for stranded migrant workers and students."""
    assert route("stranded_person") == ("civil_affairs", ["hrss", "education"])
