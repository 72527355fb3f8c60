"""The notice's relief rules, pinned with their provision IDs (pure domain, no I/O)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from services.relief.domain.facts import CaseFacts, Category, RegistryMatch
from services.relief.domain.parameters import packaged_rules
from services.relief.domain.rules import AmountKind, Schedule, evaluate_case, p51_steps_followed, payer
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


RULES = packaged_rules()


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
    p = only(facts("dibao_application", answers={"income_fell_due_to_epidemic": "yes"}))
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


# ---------------------------------------------------------------- the intake's typed answers

UNEMPLOYED = {"unemployment_insured": "no", "cannot_return_due_to_epidemic": "yes"}


def test_p5_2b_insured_caller_gets_no_grant_and_the_reason_says_why():
    """P5.2b: a caller who answers that they are insured against unemployment is not proposed a grant."""
    p = only(
        facts("temp_assist_unemployed", months_without_income=4, answers=UNEMPLOYED | {"unemployment_insured": "yes"})
    )
    assert not p.eligible and p.cap is None
    assert any(r.startswith("已参加失业保险") and "covered by unemployment insurance" in r for r in p.reasons)


def test_p5_2b_caller_who_can_return_to_work_gets_no_grant():
    """P5.2b: only those who cannot return to work because of the epidemic."""
    p = only(
        facts(
            "temp_assist_unemployed",
            months_without_income=4,
            answers=UNEMPLOYED | {"cannot_return_due_to_epidemic": "no"},
        )
    )
    assert not p.eligible and any("can return to work" in r for r in p.reasons)


def test_p5_2b_uninsured_who_cannot_return_is_paid_by_the_district_of_habitual_residence():
    """P5.2b: the place of habitual residence (经常居住地) pays, at 2 x its urban standard; the hukou district
    elsewhere is told (P5.2d)."""
    answers = UNEMPLOYED | {"habitual_residence_district": "500106"}
    p = only(facts("temp_assist_unemployed", months_without_income=3, hukou_district="500101", answers=answers))
    assert p.eligible and p.payer_district == "500106" and p.payer_basis == "habitual_residence"
    assert p.cap == Decimal("1201.00") and p.checks == () and p.hukou_notice_district == "500101"
    assert p.facts["answers"]["habitual_residence_district"] == "500106"


def test_p5_2d_place_of_hardship_acts_when_the_habitual_residence_is_unknown():
    """P5.2b/P5.2d: residence not asked -> the place of hardship acts, and the officer verifies the residence."""
    p = only(facts("temp_assist_unemployed", months_without_income=3, answers=UNEMPLOYED))
    assert p.eligible and p.payer_district == "500103" and p.payer_basis == "place_of_hardship"
    assert [c.field for c in p.checks] == ["habitual_residence_district"]
    assert p.checks[0].reason_zh.startswith("经常居住地未记录") and "P5.2d" in p.checks[0].reason_en


def test_p5_2b_unanswered_questions_go_to_the_officer_to_verify_not_paid_or_refused_silently():
    """P5.2b: insurance and return-to-work not asked -> proposed with a check for each, Chinese first."""
    p = only(facts("temp_assist_unemployed", months_without_income=3))
    assert p.eligible
    fields = [c.field for c in p.checks]
    assert fields == ["unemployment_insured", "cannot_return_due_to_epidemic", "habitual_residence_district"]
    assert all(c.text in p.to_verify for c in p.checks)
    assert all(c.reason_zh and c.reason_en and c.text.startswith(c.reason_zh) for c in p.checks)


def test_p5_2b_months_threshold_comes_from_the_parameters_in_force():
    """P5.2b: the 3 months of the notice are data: a later parameter set of 2 months lets 2 months qualify."""
    later = RULES.in_force(date(2021, 2, 15)).model_copy(
        update={
            "id": "TEST",
            "effective_from": date(2021, 6, 1),
            "p52b": RULES.in_force(date(2021, 2, 15)).p52b.model_copy(update={"months_without_income": 2}),
        }
    )
    book = RULES.with_added([later])
    before = evaluate_case(facts("temp_assist_unemployed", months_without_income=2, answers=UNEMPLOYED), BOOK, book)
    after = evaluate_case(
        facts("temp_assist_unemployed", months_without_income=2, reported_on=date(2021, 6, 2), answers=UNEMPLOYED),
        BOOK,
        book,
    )
    assert not before[0].eligible and before[0].parameters == "CQ-2021-02@v1"
    assert after[0].eligible and after[0].parameters == "TEST@v1" and after[0].facts["parameters"] == "TEST@v1"


def test_p5_1_income_fell_answer_gives_the_simplified_review():
    """P5.1: the intake's `income_fell_due_to_epidemic: yes` -> simplified, faster review, no appraisal step."""
    p = only(facts("dibao_application", answers={"income_fell_due_to_epidemic": "yes"}))
    assert p.sla_class == "dibao_fast_track" and p.review_steps == ("application", "household_check", "approval")


def test_p5_1_plain_application_gets_the_standard_review_with_public_appraisal():
    """P5.1: income did not fall because of the epidemic -> the standard review, public appraisal included."""
    p = only(facts("dibao_application", household_status="none", answers={"income_fell_due_to_epidemic": "no"}))
    assert p.sla_class == "dibao_standard" and "public_appraisal" in p.review_steps and p.checks == ()


def test_p5_1_unanswered_income_question_is_the_standard_review_and_the_officer_verifies():
    """P5.1: not asked -> standard review (never fast-tracked on a guess), with the epidemic signs as hints."""
    p = only(facts("dibao_application", months_without_income=2, special_groups=frozenset({"stranded"})))
    assert p.sla_class == "dibao_standard" and "public_appraisal" in p.review_steps
    [check] = p.checks
    assert check.field == "income_fell_due_to_epidemic" and "stranded" in check.reason_zh


def test_p5_1_contested_fast_track_application_is_appraised():
    """P5.1: public appraisal is dropped only where the application is undisputed."""
    steps = ("application", "household_check", "approval")
    assert p51_steps_followed("dibao_fast_track", False, steps) == steps
    assert p51_steps_followed("dibao_fast_track", True, steps) == (
        "application",
        "household_check",
        "public_appraisal",
        "approval",
    )


def test_p5_1_dibao_household_whose_income_fell_has_its_top_up_raised():
    """P5.1: a household already on dibao whose income fell: the top-up is raised (no new application)."""
    p = only(
        facts("dibao_application", registry=registry(Category.DIBAO), answers={"income_fell_due_to_epidemic": "yes"})
    )
    assert p.sla_class == "dibao_topup" and "topup_adjustment" in p.review_steps
    assert "raise the top-up" in p.reasons[0]


def test_p5_2c_four_eyes_threshold_comes_from_the_parameters():
    """P5.2c: the four-eyes threshold is cited from the rule parameters in force."""
    p = only(facts("temp_assist_major"))
    assert p.four_eyes_above == Decimal("5000.00") and p.parameters == "CQ-2021-02@v1"


def test_p5_2b_excluded_groups_are_data_a_later_set_may_exclude_tekun_too():
    """P5.2b: 'not in dibao' is the notice's; a deployer's set excluding another registry group refuses it."""
    shipped = RULES.in_force(date(2021, 2, 15))
    stricter = shipped.model_copy(
        update={
            "id": "TEST-TEKUN",
            "effective_from": date(2021, 6, 1),
            "p52b": shipped.p52b.model_copy(
                update={"excluded_categories": (Category.DIBAO, Category.UNEMPLOYMENT_BENEFIT, Category.TEKUN)}
            ),
        }
    )
    book = RULES.with_added([stricter])
    tekun = {"months_without_income": 4, "answers": UNEMPLOYED, "registry": registry(Category.TEKUN)}
    [before] = evaluate_case(facts("temp_assist_unemployed", **tekun), BOOK, book)
    [after] = evaluate_case(facts("temp_assist_unemployed", reported_on=date(2021, 6, 2), **tekun), BOOK, book)
    assert before.eligible and not after.eligible
    assert any("registered as tekun" in r for r in after.reasons)
