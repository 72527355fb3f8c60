"""Dated standards (validated at start-up), the registry CSV import (P2.3) and subsidy runs (P1.3, P2.1)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from importlib import resources

import pytest

from services.relief.domain.facts import Category
from services.relief.domain.money import yuan
from services.relief.domain.registry import id_card_check_char, id_card_checksum_ok, parse_registry_csv
from services.relief.domain.runs import (
    FundingSource,
    Recipient,
    RunKind,
    RunSpec,
    funding_source,
    ineligible_categories,
    pay_before_error,
    run_id_for,
    run_payment,
)
from services.relief.domain.standards import DibaoStandard, NoStandard, load_standards

pytestmark = pytest.mark.unit


def test_shipped_standards_cover_every_district_and_are_marked_as_examples():
    text = resources.files("services.relief.data").joinpath("dibao_standards.yaml").read_text(encoding="utf-8")
    parsed, book = load_standards(text)
    assert parsed.example is True and "EXAMPLE" in text
    assert book.missing_districts() == []


def test_standard_in_force_is_the_latest_effective_on_or_before_the_day():
    _, book = load_standards(
        "example: true\nstandards:\n"
        "  - {district: '500103', effective_from: 2021-01-01, urban: '620', rural: '496'}\n"
        "  - {district: '500103', effective_from: 2021-07-01, urban: '650', rural: '520'}\n",
        require_every_district=False,
    )
    assert book.amount("500103", "urban", date(2021, 6, 30)) == Decimal("620")
    assert book.amount("500103", "urban", date(2021, 7, 1)) == Decimal("650")
    with pytest.raises(NoStandard):
        book.amount("500103", "urban", date(2020, 12, 31))
    added = book.with_added(
        [DibaoStandard(district="500103", effective_from=date(2022, 1, 1), urban=Decimal("700"), rural=Decimal("560"))]
    )
    assert added.amount("500103", "rural", date(2022, 3, 1)) == Decimal("560")


@pytest.mark.parametrize(
    "bad",
    [
        "example: true\nstandards:\n  - {district: '999999', effective_from: 2021-01-01, urban: '1', rural: '1'}\n",
        "example: true\nstandards:\n  - {district: '500103', effective_from: 2021-01-01, urban: '-1', rural: '1'}\n",
        "example: true\nstandards:\n  - {district: '500103', effective_from: 2021-01-01, urban: '1.234', rural: '1'}\n",
        "example: true\nstandards:\n  - {district: '500103', effective_from: 2021-01-01, urban: '1', rural: '1'}\n"
        "  - {district: '500103', effective_from: 2021-01-01, urban: '2', rural: '2'}\n",
        "standards: []\n",
    ],
)
def test_invalid_standards_fail_validation(bad):
    with pytest.raises(ValueError):
        load_standards(bad, require_every_district=False)


def test_missing_districts_fail_start_up_validation():
    with pytest.raises(ValueError, match="no standard for districts"):
        load_standards(
            "example: true\nstandards:\n  - {district: '500103', effective_from: 2021-01-01, urban: '1', rural: '1'}\n"
        )


def test_money_is_decimal_to_the_fen():
    assert yuan("1240.005") == Decimal("1240.01") and str(yuan(3)) == "3.00"
    with pytest.raises(TypeError):
        yuan(1.1)  # type: ignore[arg-type]  # a float is what the check refuses


def make_id(prefix17: str) -> str:
    return prefix17 + id_card_check_char(prefix17)


GOOD_ID = make_id("50010319800101123")


def test_id_card_checksum():
    assert id_card_checksum_ok(GOOD_ID)
    assert not id_card_checksum_ok(GOOD_ID[:17] + ("0" if GOOD_ID[17] != "0" else "1"))


def test_p23_registry_import_keeps_good_rows_and_names_each_bad_one():
    """P2.3: a validation report names each bad row (line, id, field, reason zh/en); good rows are kept."""
    csv_text = (
        "recipient_id,name,id_card,district,area,categories,approved_on,ended_on\n"
        f"R1,张三,{GOOD_ID},500103,urban,dibao,2021-01-05,\n"
        f"R2,李四,{GOOD_ID[:17]}0,500103,urban,dibao,2021-01-05,\n"  # wrong check digit (unless it is 0)
        f"R3,王五,{make_id('50010319800101124')},999999,suburb,dibao wizard,2021-13-01,\n"
        f"R1,重复,{make_id('50010319800101125')},500103,rural,tekun,2021-01-05,\n"
        f"R5,,{make_id('50010319800101126')},500103,rural,tekun orphan,2021-01-05,\n"
        f"R6,赵六,{make_id('50010319800101127')},500106,rural,tekun;orphan,2021-01-05,2021-03-01\n"
    )
    report = parse_registry_csv(csv_text, salt="s")
    summary = report.summary()
    assert summary["rows"] == 6 and summary["accepted"] == 2
    assert [r.recipient_id for r in report.accepted] == ["R1", "R6"]
    assert report.accepted[1].categories == {Category.TEKUN, Category.ORPHAN}
    bad = {r["line"]: r for r in summary["rejected"]}
    if GOOD_ID[17] != "0":
        assert bad[3]["errors"][0]["field"] == "id_card"
    assert {e["field"] for e in bad[4]["errors"]} == {"district", "area", "categories", "approved_on"}
    assert bad[5]["errors"][0]["reason_en"] == "duplicate of line 2"
    assert bad[6]["errors"] == [{"field": "name", "reason_zh": "必填项缺失", "reason_en": "required value missing"}]
    assert GOOD_ID not in str(report.accepted[0].document())  # never stored in clear


def test_p23_registry_rows_the_csv_module_cannot_read_are_named_and_the_others_kept():
    """P2.3: a bare CR (as an old spreadsheet writes) ends a row; a field over the csv limit is that row's
    error; neither stops the import nor becomes a server error."""
    header = "recipient_id,name,id_card,district,area,categories,approved_on\r\n"
    good = f"R1,张三,{GOOD_ID},500103,urban,dibao,2021-01-05\r\n"
    huge = "R2," + "张" * 140_000 + f",{GOOD_ID},500103,urban,dibao,2021-01-05\r\n"
    split = f"R3,李\r四,{make_id('50010319800101124')},500103,urban,dibao,2021-01-05\r\n"
    report = parse_registry_csv(header + good + huge + split, salt="s")
    assert [r.recipient_id for r in report.accepted] == ["R1"]
    bad = {r["line"]: r for r in report.summary()["rejected"]}
    unreadable = bad[3]["errors"][0]
    assert unreadable["field"] == "line" and "field larger than field limit" in unreadable["reason_en"]
    assert unreadable["reason_zh"].startswith("此行无法按 CSV 读取")
    assert {e["field"] for e in bad[4]["errors"]} == {"id_card", "district", "area", "categories", "approved_on"}
    assert bad[5]["recipient_id"] == "四"  # the row's second half, on a line of its own
    assert report.rows == 4


def test_registry_import_rejects_a_file_without_the_required_columns():
    with pytest.raises(ValueError, match="missing columns"):
        parse_registry_csv("recipient_id,name\nR1,x\n", salt="s")


SPEC = RunSpec(
    "P2.1-2021-02-spring-city",
    RunKind.HOLIDAY,
    "2021-02",
    frozenset({"500103"}),
    {Category.DIBAO: Decimal("200"), Category.ORPHAN: Decimal("300")},
)


def person(*cats, approved=date(2020, 1, 1), ended=None, district="500103"):
    return Recipient("R", district, frozenset(cats), approved, ended)


def test_p21_holiday_subsidy_pays_eligible_groups_once_at_the_highest_amount():
    """P2.1: dibao/tekun/orphans/unsupported children; one payment per recipient, highest category."""
    assert run_payment(SPEC, person(Category.DIBAO)) == (Decimal("200"), Category.DIBAO)
    assert run_payment(SPEC, person(Category.DIBAO, Category.ORPHAN)) == (Decimal("300"), Category.ORPHAN)
    assert run_payment(SPEC, person(Category.EDGE)) is None
    assert run_payment(SPEC, person(Category.DIBAO, district="500106")) is None


def test_p21_newly_approved_in_the_month_are_paid_that_month_and_due_by_its_last_day():
    """P2.1: approved on 2021-02-27 -> paid by the February run, due 2021-02-28."""
    assert run_payment(SPEC, person(Category.DIBAO, approved=date(2021, 2, 27))) is not None
    assert run_payment(SPEC, person(Category.DIBAO, approved=date(2021, 3, 1))) is None
    assert run_payment(SPEC, person(Category.DIBAO, ended=date(2021, 1, 31))) is None
    assert SPEC.due_on == date(2021, 2, 28)


def test_p13_price_linkage_categories():
    """P1.3: dibao, tekun, youfu and unemployment-benefit recipients; not edge or low-income households."""
    assert ineligible_categories(RunKind.PRICE_LINKAGE, {Category.DIBAO, Category.YOUFU}) == []
    assert ineligible_categories(RunKind.PRICE_LINKAGE, {Category.EDGE, Category.ORPHAN}) == ["edge", "orphan"]
    assert ineligible_categories(RunKind.HOLIDAY, {Category.YOUFU}) == ["youfu"]


def test_p2_1_first_payment_run_pays_the_allowance_only_to_those_approved_in_its_month():
    """P2.1: newly approved in February are approved and paid in February, by a first-payment run (the
    dibao/tekun allowance itself, not a holiday subsidy); those approved earlier are not first payments."""
    spec = RunSpec(
        "P2.1-first-payment-2021-02-main-500103",
        RunKind.FIRST_PAYMENT,
        "2021-02",
        frozenset({"500103"}),
        {Category.DIBAO: Decimal("620")},
    )
    assert run_payment(spec, person(Category.DIBAO, approved=date(2021, 2, 27))) == (Decimal("620"), Category.DIBAO)
    assert run_payment(spec, person(Category.DIBAO, approved=date(2021, 1, 31))) is None
    assert run_payment(spec, person(Category.DIBAO, approved=date(2021, 3, 1))) is None
    assert spec.due_on == date(2021, 2, 28)
    assert ineligible_categories(RunKind.FIRST_PAYMENT, {Category.ORPHAN, Category.TEKUN}) == ["orphan"]
    assert run_id_for(RunKind.FIRST_PAYMENT, "2021-02", "main", "500103") == spec.run_id


def test_p2_1_pre_holiday_run_is_due_the_day_before_the_festival_given():
    """P2.1: February's allowance reaches recipients before the Spring Festival (2026-02-17, the day the
    coordinator gives): due 2026-02-16; the festival day must fall in the run's month."""
    spec = RunSpec(
        "x",
        RunKind.PRE_HOLIDAY,
        "2026-02",
        frozenset({"500103"}),
        {Category.DIBAO: Decimal("650")},
        pay_before=date(2026, 2, 17),
    )
    assert spec.due_on == date(2026, 2, 16)
    assert run_payment(spec, person(Category.TEKUN, Category.DIBAO)) == (Decimal("650"), Category.DIBAO)
    assert pay_before_error(RunKind.PRE_HOLIDAY, "2026-02", date(2026, 2, 17)) is None
    assert str(pay_before_error(RunKind.PRE_HOLIDAY, "2026-02", None)).startswith("节前发放须填写节日日期")
    assert "must fall in 2026-02" in str(pay_before_error(RunKind.PRE_HOLIDAY, "2026-02", date(2026, 1, 29)))
    assert "only a pre-holiday run" in str(pay_before_error(RunKind.HOLIDAY, "2026-02", date(2026, 2, 17)))
    assert run_id_for(RunKind.HOLIDAY, "2026-02", "spring", "city") == "P2.1-2026-02-spring-city"  # ids kept


def test_p1_3_funding_source_of_each_payment():
    """P1.3: city and district finance for dibao, tekun and 优抚; the unemployment insurance fund for
    unemployment-insurance and unemployment-subsidy recipients."""
    assert (
        funding_source(RunKind.PRICE_LINKAGE, Category.UNEMPLOYMENT_BENEFIT)
        is FundingSource.UNEMPLOYMENT_INSURANCE_FUND
    )
    for category in (Category.DIBAO, Category.TEKUN, Category.YOUFU):
        assert funding_source(RunKind.PRICE_LINKAGE, category) is FundingSource.CITY_DISTRICT_FINANCE
    assert funding_source(RunKind.HOLIDAY, Category.ORPHAN) is FundingSource.CITY_DISTRICT_FINANCE


@pytest.mark.parametrize("amount", ["1e30", "1e20", "NaN", "-5", "100.001"])
def test_p52b_an_amount_an_officer_or_coordinator_enters_is_bounded_and_never_breaks_arithmetic(amount):
    """P5.2b/P5.2c amounts and subsidy-run amounts: at most MAX_YUAN with two decimals, refused by field."""
    from pydantic import ValidationError

    from services.relief.schemas import Approve, OpenRun

    with pytest.raises(ValidationError) as approve:
        Approve.model_validate({"amount_yuan": amount})
    assert approve.value.errors()[0]["loc"] == ("amount_yuan",)
    with pytest.raises(ValidationError) as run:
        OpenRun.model_validate({"kind": "price_linkage", "month": "2026-03", "amounts": {"dibao": amount}})
    assert run.value.errors()[0]["loc"][0] == "amounts"
