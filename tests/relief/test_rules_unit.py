"""The notice's relief rules, pinned with their provision IDs (pure domain, no I/O)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from services.relief.domain.facts import CaseFacts, Category, RegistryMatch
from services.relief.domain.rules import AmountKind, Schedule, evaluate_case, payer
from services.relief.domain.standards import Area, DibaoStandard, StandardsBook

pytestmark = pytest.mark.unit

BOOK = StandardsBook(
    [
        DibaoStandard(district="500103", effective_from=date(2021, 1, 1), urban=Decimal("620"), rural=Decimal("496")),
        DibaoStandard(district="500103", effective_from=date(2021, 7, 1), urban=Decimal("650"), rural=Decimal("520")),
        DibaoStandard(
            district="500106", effective_from=date(2021, 1, 1), urban=Decimal("600.50"), rural=Decimal("480")
        ),
    ]
)


def facts(need: str, **kw) -> CaseFacts:
    base: dict[str, Any] = {
        "case_id": "CQ-20210215-000001",
        "needs": (need,),
        "place_district": "500103",
        "reported_on": date(2021, 2, 15),
    }
    return CaseFacts(**(base | kw))


def registry(*cats: Category, area: Area = Area.URBAN, active: bool = True) -> RegistryMatch:
    return RegistryMatch("R-1", frozenset(cats), "500103", area, active)


def only(f: CaseFacts):
    [proposal] = evaluate_case(f, BOOK)
    return proposal


def test_p52a_dibao_patient_gets_twice_the_local_standard_monthly():
    """P5.2a: 2 x the local (place of hardship) dibao standard, monthly."""
    p = only(facts("temp_assist_epidemic", household_status="dibao", registry=registry(Category.DIBAO)))
    assert p.eligible and p.rule_id == "P5.2a" and p.schedule is Schedule.MONTHLY
    assert p.amount_kind is AmountKind.FIXED and p.amount == Decimal("1240.00")
    assert "P5.2a" in p.provisions and p.facts["household_status"] == "dibao"


def test_p52a_uses_the_rural_standard_of_a_rural_registry_recipient_and_the_standard_in_force_that_day():
    """P5.2a: the standard is the one in force on the day reported (dated data), by the recipient's area."""
    p = only(
        facts("temp_assist_epidemic", reported_on=date(2021, 7, 1), registry=registry(Category.TEKUN, area=Area.RURAL))
    )
    assert p.amount == Decimal("1040.00") and p.area is Area.RURAL


@pytest.mark.parametrize("group", ["orphan", "unsupported_child"])
def test_p52a_child_in_difficulty_is_eligible(group):
    """P5.2a: children in difficulty qualify; unmatched declared groups must be verified."""
    p = only(facts("temp_assist_epidemic", household_status="none", special_groups=frozenset({group})))
    assert p.eligible and any("verify the group" in v for v in p.to_verify)


def test_p52a_person_in_no_named_group_is_not_eligible():
    """P5.2a: not dibao, tekun, low-income nor a child in difficulty -> no proposal amount, reasons given."""
    p = only(facts("temp_assist_epidemic", household_status="none"))
    assert not p.eligible and p.amount is None and p.reasons


def test_p52a_unknown_household_is_proposed_with_a_check_not_refused():
    """P5.2a: an unknown household status is for the officer to verify, not a refusal (P6.3)."""
    p = only(facts("temp_assist_epidemic"))
    assert p.eligible and any("household group unknown" in v for v in p.to_verify)
    assert any("urban standard assumed" in v for v in p.to_verify)


def test_p52b_exactly_three_months_without_income_qualifies_with_a_cap_of_twice_the_urban_standard():
    """P5.2b boundary: exactly 3 consecutive months qualifies; cap = 2 x urban standard, officer sets amount."""
    p = only(
        facts(
            "temp_assist_unemployed",
            months_without_income=3,
            household_status="none",
            special_groups=frozenset({"unemployed_uninsured"}),
        )
    )
    assert p.eligible and p.schedule is Schedule.ONCE and p.amount_kind is AmountKind.CAPPED
    assert p.cap == Decimal("1240.00") and p.amount is None


def test_p52b_two_months_without_income_does_not_qualify():
    """P5.2b boundary: 2 months is fewer than 3."""
    p = only(
        facts("temp_assist_unemployed", months_without_income=2, special_groups=frozenset({"unemployed_uninsured"}))
    )
    assert not p.eligible and "fewer than 3" in p.reasons[0]


def test_p52b_cap_uses_the_urban_standard_even_for_a_rural_registry_person():
    """P5.2b: the cap is the URBAN standard of the place of habitual residence."""
    p = only(
        facts(
            "temp_assist_unemployed",
            place_district="500106",
            months_without_income=5,
            registry=registry(Category.EDGE, area=Area.RURAL),
        )
    )
    assert p.eligible and p.cap == Decimal("1201.00") and p.payer_district == "500106"


@pytest.mark.parametrize(
    "kw",
    [
        {"household_status": "dibao"},
        {"registry": registry(Category.DIBAO)},
        {"registry": registry(Category.UNEMPLOYMENT_BENEFIT)},
    ],
)
def test_p52b_dibao_recipients_and_insured_unemployed_are_excluded(kw):
    """P5.2b: not in dibao, not covered by unemployment insurance."""
    assert not only(facts("temp_assist_unemployed", months_without_income=4, **kw)).eligible


def test_p52b_unrecorded_months_are_to_verify():
    """P5.2b: months without income unknown -> proposed, officer verifies."""
    p = only(facts("temp_assist_unemployed"))
    assert p.eligible and any("months without income not recorded" in v for v in p.to_verify)


def test_p52c_major_hardship_is_case_by_case_with_no_fixed_amount():
    """P5.2c: 一事一议, the officer proposes the amount."""
    p = only(facts("temp_assist_major"))
    assert p.eligible and p.amount_kind is AmountKind.CASE_BY_CASE and p.amount is None and p.cap is None


def test_p52d_place_of_hardship_pays_and_hukou_district_elsewhere_is_notified():
    """P5.2d: the place where the emergency happened pays; the registration district is told."""
    f = facts("temp_assist_major", hukou_district="500101")
    assert payer(f) == ("500103", "500101")
    assert only(f).payer_district == "500103" and only(f).hukou_notice_district == "500101"
    assert payer(facts("temp_assist_major", hukou_district="500103")) == ("500103", None)
    assert payer(facts("temp_assist_major")) == ("500103", None)


def test_p51_epidemic_income_loss_is_fast_tracked_and_uncontested_skip_appraisal():
    """P5.1: faster review (shorter SLA class); the fast path has no public appraisal step."""
    p = only(facts("dibao_application", months_without_income=2))
    assert p.sla_class == "dibao_fast_track" and "public_appraisal" not in p.review_steps
    assert p.schedule is Schedule.REVIEW and p.amount_kind is AmountKind.NONE


def test_p51_without_epidemic_signs_is_the_standard_review():
    """P5.1: no sign of an epidemic income fall -> standard review with public appraisal."""
    p = only(facts("dibao_application", household_status="none"))
    assert p.sla_class == "dibao_standard" and "public_appraisal" in p.review_steps


def test_needs_relief_does_not_handle_are_ignored_and_duplicates_once():
    f = facts("homeless_cold", needs=("homeless_cold", "temp_assist_major", "temp_assist_major"))
    assert [p.rule_id for p in evaluate_case(f, BOOK)] == ["P5.2c"]


def test_every_decision_carries_its_facts_without_personal_numbers():
    """P6.3: the facts a decision saw are recorded with it."""
    p = only(facts("temp_assist_epidemic", registry=registry(Category.DIBAO)))
    assert p.facts["registry"]["recipient_id"] == "R-1" and p.facts["place_district"] == "500103"
