"""The routing decision: pure, explained by rule ids and facts, acting in the place of hardship."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.events.hotline import Caller, HelpRequested, Place
from contracts.events.router import Assignment
from services.router.domain.catalogue import load_catalogue
from services.router.domain.routing import Routing, RoutingFacts, decide

pytestmark = pytest.mark.unit

CATALOGUE = load_catalogue()
RECEIVED = datetime(2026, 2, 15, 8, 0, tzinfo=UTC)


def facts(*needs: str, **fields: Any) -> RoutingFacts:
    return RoutingFacts(district=fields.pop("district", "500103"), needs=needs, received_at=RECEIVED, **fields)


def lead(routing: Routing) -> Assignment:
    assert routing.lead is not None, "no lead: the coordinator must arbitrate"
    return routing.lead


def test_place_of_hardship_acts_not_the_household_registration_P5_2d() -> None:
    request = HelpRequested(
        case_id="CQ-20260215-000001",
        received_at=RECEIVED,
        operator_id="op-1",
        caller=Caller(name="王五", phone="13912345678", hukou_district="500101"),
        place=Place(district="500103"),
        needs=("temp_assist_major",),
        emergency=True,
    )
    routing = decide(CATALOGUE, RoutingFacts.of(request))
    assert lead(routing).district == "500103"
    assert all(a.district == "500103" for a in routing.co_handlers)
    assert "P5.2d" in routing.decision.provisions
    assert routing.decision.facts["hukou_district"] == "500101"
    assert routing.decision.facts["acting_district_from"] == "place_of_hardship"
    assert routing.decision.rule_ids[0] == "R-P5.2d-EMERGENCY-ASSISTANCE"


def test_facts_carry_no_name_phone_or_id_card() -> None:
    request = HelpRequested(
        case_id="CQ-20260215-000002",
        received_at=RECEIVED,
        operator_id="op-1",
        caller=Caller(name="王五", phone="13912345678", id_card="500103199001011234"),
        place=Place(district="500103"),
        needs=("other",),
    )
    recorded = str(decide(CATALOGUE, RoutingFacts.of(request)).decision.model_dump())
    assert "13912345678" not in recorded and "500103199001011234" not in recorded and "王五" not in recorded


def test_homeless_in_the_cold_is_an_emergency_for_civil_affairs_with_health_P2_2() -> None:
    routing = decide(CATALOGUE, facts("homeless_cold"))
    assert lead(routing).department == "civil_affairs"
    assert [a.department for a in routing.co_handlers] == ["health"]
    assert routing.sla_class == "emergency" and routing.emergency is True
    assert routing.decision.rule_ids == ("R-P2.2-HOMELESS-COLD",)


def test_institution_hazard_goes_to_civil_affairs_the_same_day_P4_1() -> None:
    routing = decide(CATALOGUE, facts("institution_hazard"))
    assert (lead(routing).department, routing.sla_class) == ("civil_affairs", "same_day")


def test_dibao_applications_whose_income_fell_in_the_epidemic_are_fast_tracked_P5_1() -> None:
    """P5.1: the intake's answer `income_fell_due_to_epidemic: yes` fast-tracks; `no` or not asked does not."""
    fell = decide(CATALOGUE, facts("dibao_application", answers={"income_fell_due_to_epidemic": "yes"}))
    assert fell.sla_class == "fast_track" and fell.decision.rule_ids[0] == "R-P5.1-DIBAO-EPIDEMIC"
    assert fell.decision.facts["answers"] == {"income_fell_due_to_epidemic": "yes"}
    plain = decide(CATALOGUE, facts("dibao_application", answers={"income_fell_due_to_epidemic": "no"}))
    assert plain.sla_class == "standard" and plain.decision.rule_ids[0] == "R-P5.1-DIBAO"
    assert decide(CATALOGUE, facts("dibao_application")).sla_class == "standard"


@pytest.mark.parametrize(
    ("kind", "department", "co_handlers"),
    [
        ("dibao", "civil_affairs", ["finance"]),
        ("tekun", "civil_affairs", ["finance"]),
        ("youfu", "veterans_affairs", ["finance"]),
        ("unemployment", "hrss", []),
        (None, "civil_affairs", ["finance"]),
    ],
)
def test_p1_3_price_subsidy_goes_by_the_kind_of_recipient(kind, department, co_handlers) -> None:
    """P1.3: dibao/tekun to civil affairs with finance (city and district funds), 优抚 to veterans affairs,
    unemployment-insurance recipients to human resources & social security (the unemployment fund)."""
    answers = {"subsidy_recipient_kind": kind} if kind else {}
    routing = decide(CATALOGUE, facts("price_subsidy", answers=answers))
    assert lead(routing).department == department
    assert [a.department for a in routing.co_handlers] == co_handlers


def test_p1_3_an_uninsured_unemployed_caller_is_not_routed_as_an_unemployment_benefit_recipient() -> None:
    """P1.3: the unemployment route is for recipients of unemployment insurance, named by the answer."""
    routing = decide(CATALOGUE, facts("price_subsidy", special_groups=("unemployed_uninsured",)))
    assert lead(routing).department == "civil_affairs"


def test_price_gouging_goes_to_market_regulation_P1_2() -> None:
    assert lead(decide(CATALOGUE, facts("price_gouging"))).department == "market_regulation"


def test_special_aid_of_a_low_income_household_brings_in_civil_affairs_P2_3() -> None:
    routing = decide(CATALOGUE, facts("medical_aid", household_status="dibao"))
    assert lead(routing).department == "medical_security"
    assert [a.department for a in routing.co_handlers] == ["civil_affairs"]
    assert routing.decision.rule_ids == ("R-P2.3-MEDICAL-AID", "M-P2.3-LOW-INCOME-LEDGER")
    assert decide(CATALOGUE, facts("medical_aid", household_status="none")).co_handlers == ()


def test_several_needs_make_one_case_with_the_most_urgent_need_leading_P2_3() -> None:
    routing = decide(CATALOGUE, facts("housing_aid", "homeless_cold", "education_aid"))
    assert lead(routing).department == "civil_affairs"
    assert [a.department for a in routing.co_handlers] == ["health", "housing", "education"]
    assert routing.decision.rule_ids == ("R-P2.2-HOMELESS-COLD", "R-P2.3-HOUSING-AID", "R-P2.3-EDUCATION-AID")


def test_an_emergency_flag_raises_any_case_to_the_emergency_class_P6_2() -> None:
    routing = decide(CATALOGUE, facts("housing_aid", emergency=True))
    assert routing.sla_class == "emergency" and "M-P6.2-EMERGENCY" in routing.decision.rule_ids


def test_an_unknown_need_falls_back_to_civil_affairs_of_the_place_P6_2() -> None:
    routing = decide(CATALOGUE, facts("something_new", district="LJXQ"))
    assert lead(routing).department == "civil_affairs" and lead(routing).district == "LJXQ"
    assert routing.decision.rule_ids == ("R-FALLBACK",)


def test_a_refusing_department_is_left_out_and_the_next_candidate_leads() -> None:
    answers = {"subsidy_recipient_kind": "unemployment"}
    routing = decide(CATALOGUE, facts("price_subsidy", answers=answers), exclude={"hrss"})
    assert lead(routing).department == "civil_affairs"
    assert routing.decision.rule_ids[0] == "R-P1.3-PRICE-SUBSIDY"
    assert routing.decision.facts["excluded_departments"] == ["hrss"]
    assert routing.decision.facts["refused_candidates"] == {"price_subsidy": ["R-P1.3-PRICE-SUBSIDY-UNEMPLOYMENT"]}


def test_when_every_candidate_refused_civil_affairs_is_the_fallback() -> None:
    routing = decide(CATALOGUE, facts("price_gouging"), exclude={"market_regulation"})
    assert lead(routing).department == "civil_affairs" and "R-FALLBACK" in routing.decision.rule_ids


def test_when_civil_affairs_refused_too_the_coordinator_must_arbitrate() -> None:
    routing = decide(CATALOGUE, facts("other"), exclude={"civil_affairs"})
    assert routing.lead is None and routing.needs_arbitration


def test_decision_is_pure_and_repeatable() -> None:
    first, second = decide(CATALOGUE, facts("stranded_person")), decide(CATALOGUE, facts("stranded_person"))
    assert first == second
    assert first.decision.catalogue_version == CATALOGUE.version


def test_a_remembered_selection_decides_exactly_as_a_fresh_one_for_every_rule() -> None:
    """`decide` memoises the rule selection per catalogue; the facts record stays each case's own."""
    from services.router.domain.catalogue import parse_catalogue

    needs = sorted({r.service for r in CATALOGUE.rules if r.kind == "dispatch" and r.service} | {"other"})
    variants: list[dict[str, Any]] = [
        {},
        {"household_status": "dibao"},
        {"emergency": True},
        {"special_groups": ("elderly_alone",)},
        {"months_without_income": 3, "household_status": "low_income"},
        {"answers": {"income_fell_due_to_epidemic": "yes"}},
        {"answers": {"subsidy_recipient_kind": "youfu"}},
    ]
    cold = parse_catalogue(CATALOGUE.model_dump(mode="json"))  # same rules, empty memory
    for need in needs:
        for extra in variants:
            for exclude in (frozenset(), frozenset({"civil_affairs"})):
                warm_first = decide(CATALOGUE, facts(need, **extra), exclude=exclude)
                warm_again = decide(CATALOGUE, facts(need, **extra), exclude=exclude)
                fresh = decide(cold, facts(need, **extra), exclude=exclude)
                cold.selection_cache.clear()
                assert warm_again == warm_first == fresh, (need, extra, exclude)
    assert CATALOGUE.selection_cache  # the warm catalogue did remember


def test_remembered_selections_keep_each_case_s_own_facts_and_day() -> None:
    early = decide(CATALOGUE, facts("stranded_person"))
    later = RoutingFacts(
        district="500103",
        needs=("stranded_person",),
        received_at=datetime(2026, 2, 15, 9, 0, tzinfo=UTC),
        hukou_district="500104",
    )
    second = decide(CATALOGUE, later)
    assert second.decision.rule_ids == early.decision.rule_ids
    assert second.decision.facts["received_at"] != early.decision.facts["received_at"]
    assert second.decision.facts["hukou_district"] == "500104" and "hukou_district" not in early.decision.facts


def test_p1_3_routing_reads_the_coded_answers_of_the_request_and_never_free_text() -> None:
    """P1.3/P5.1: RoutingFacts keeps the single-value answers of the needs, not names or free text."""
    request = HelpRequested(
        case_id="CQ-20260215-000002",
        received_at=RECEIVED,
        operator_id="op-1",
        caller=Caller(name="王五", phone="13912345678"),
        place=Place(district="500103"),
        needs=("price_subsidy",),
        attributes={"subsidy_recipient_kind": "youfu", "period": "2026-01 张三家"},
    )
    routing_facts = RoutingFacts.of(request)
    assert routing_facts.answers == {"subsidy_recipient_kind": "youfu"}
    assert lead(decide(CATALOGUE, routing_facts)).department == "veterans_affairs"
