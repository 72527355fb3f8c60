"""The relief rules' parameters as dated, versioned data (P5.1, P5.2a-c): validated at start-up, the set in
force by date, cited by every proposal."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from importlib import resources

import pytest

from services.relief.app import load_rules_book
from services.relief.domain.parameters import NoParameters, load_rules, packaged_rules
from services.relief.settings import Settings

pytestmark = pytest.mark.unit

SHIPPED = resources.files("services.relief.data").joinpath("relief_rules.yaml").read_text(encoding="utf-8")


def test_p5_2_shipped_parameters_are_the_notice_figures():
    """P5.2a/P5.2b: 2 x the standard, 3 months without income, the named groups; P5.2c four eyes."""
    p = packaged_rules().in_force(date(2021, 2, 15))
    assert p.cite == "CQ-2021-02@v1"
    assert p.p52a.multiplier == Decimal(2) and p.p52b.multiplier == Decimal(2)
    assert p.p52b.months_without_income == 3 and p.p52b.standard_area == "urban"
    assert {str(c) for c in p.p52a.household_categories} == {"dibao", "tekun", "low_income"}
    assert {str(g) for g in p.p52a.child_groups} == {"orphan", "unsupported_child"}
    assert p.p52c.four_eyes_above_yuan == Decimal("5000.00")


def test_p5_2_no_parameters_before_the_notice_took_effect():
    """P5.2: a day before the first set has no parameters: a data gap, not a refusal."""
    with pytest.raises(NoParameters):
        packaged_rules().in_force(date(2021, 2, 3))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('multiplier: "2"\n      months', 'multiplier: "-1"\n      months'), "p52b.multiplier"),
        (("months_without_income: 3", "months_without_income: 0"), "months_without_income"),
        (("household_categories: [dibao, tekun, low_income]", "household_categories: [dibao, rich]"), "household"),
        (('four_eyes_above_yuan: "5000.00"', 'four_eyes_above_yuan: "50.001"'), "four_eyes_above_yuan"),
        (("fast_steps: [application, household_check, approval]", "fast_steps: [public_appraisal]"), "fast_steps"),
        (("need: temp_assist_major", "need: no_such_service"), "unknown service codes"),
        (("provisions: [P5.1, P2.3]", "provisions: [five-one]"), "provision ids"),
    ],
)
def test_p5_2_a_bad_rules_file_fails_validation_naming_the_field(change, named):
    """P5.2: a bad parameter stops the service with a message naming what is wrong."""
    old, new = change
    assert old in SHIPPED
    with pytest.raises(ValueError, match="relief rules invalid") as exc:
        load_rules(SHIPPED.replace(old, new, 1))
    assert named in str(exc.value)


def test_p5_2_two_parameter_sets_on_one_date_are_refused():
    """P5.2: one set per date, so the set in force is never ambiguous."""
    start = SHIPPED.index("  - id: CQ-2021-02")
    doubled = SHIPPED + SHIPPED[start:].replace("version: 1", "version: 2", 1)
    with pytest.raises(ValueError, match="two sets take effect on 2021-02-04"):
        load_rules(doubled)


def test_p5_2_a_bad_rules_file_stops_the_service_at_start_up(tmp_path):
    """P5.2: the start-up loader refuses an invalid file (the service does not start)."""
    bad = tmp_path / "rules.yaml"
    bad.write_text(SHIPPED.replace("months_without_income: 3", "months_without_income: many"), encoding="utf-8")
    with pytest.raises(ValueError, match="months_without_income"):
        load_rules_book(Settings(rules_path=str(bad)))
    assert load_rules_book(Settings()).in_force(date(2021, 3, 1)).cite == "CQ-2021-02@v1"
