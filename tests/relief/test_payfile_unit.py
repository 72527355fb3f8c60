"""The bank's payment and return files as pure rules (P6.1), and personal data masked (P5.2, P6.3): payment
references, return rows checked on their own, each row's outcome, masked ID-card and phone numbers, and
what a registry search text asks for."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from services.relief.domain.payfile import (
    EXPORT_COLUMNS,
    ExportRow,
    Judge,
    Outcome,
    Payable,
    Payee,
    header_map,
    parse_reference,
    parse_return_row,
    reference_of,
    unreadable_row,
)
from services.relief.domain.personal import (
    SearchKind,
    mask_id_card,
    mask_phone,
    registry_equalities,
    registry_matches,
    registry_search,
    registry_terms,
)
from services.relief.domain.registry import hash_id_card
from services.relief.payfiles import payment_csv, payment_xlsx, read_table
from tests.relief.conftest import id_card

pytestmark = pytest.mark.unit
HEADER = ["reference", "amount_yuan", "status", "bank_transaction_id", "date"]
COLUMNS = header_map(HEADER)[0]


def row(line: int, *cells: str):
    return parse_return_row(line, list(cells), COLUMNS)


def test_a_one_time_grant_is_referenced_by_its_id_and_a_monthly_one_by_id_and_month():
    assert reference_of("CQ-1:P5.2b", "once") == "CQ-1:P5.2b"
    assert reference_of("CQ-1:P5.2a", "2021-03") == "CQ-1:P5.2a@2021-03"
    assert parse_reference("CQ-1:P5.2a@2021-03") == ("CQ-1:P5.2a", "2021-03")
    assert parse_reference(" CQ-1:P5.2b ") == ("CQ-1:P5.2b", "once")
    assert parse_reference("CQ-1:P5.2b@later") == ("CQ-1:P5.2b@later", "once")  # not a month: no period


def test_return_headers_may_be_chinese_and_the_date_may_be_missing():
    columns, missing = header_map(["\ufeff付款编号", "金额", "状态", "银行流水号"])
    assert missing == [] and columns == {"reference": 0, "amount_yuan": 1, "status": 2, "bank_transaction_id": 3}
    assert header_map(["reference", "amount"])[1] == ["status", "bank_transaction_id"]


def test_a_good_paid_row_parses_with_amount_to_the_fen_and_its_date():
    r = row(2, "CQ-1:P5.2b", "1,240.5", "成功", "TX-1", "2021-03-21")
    assert not r.errors and r.amount == Decimal("1240.50") and r.paid is True and r.paid_on.isoformat() == "2021-03-21"


@pytest.mark.parametrize(
    ("cells", "field"),
    [
        (("", "10.00", "paid", "TX"), "reference"),
        (("R", "10.001", "paid", "TX"), "amount_yuan"),
        (("R", "-5", "paid", "TX"), "amount_yuan"),
        (("R", "ten", "paid", "TX"), "amount_yuan"),
        (("R", "10.00", "maybe", "TX"), "status"),
        (("R", "10.00", "paid", ""), "bank_transaction_id"),
        (("R", "10.00", "paid", "TX", "21/03/2021"), "date"),
    ],
)
def test_a_bad_row_names_the_field_and_why_in_both_languages(cells, field):
    r = row(7, *cells)
    assert [e.field for e in r.errors] == [field] and all(e.reason_zh and e.reason_en for e in r.errors)
    assert Judge({})(r).outcome is Outcome.INVALID


def test_each_row_gets_its_outcome_and_a_reference_paid_earlier_in_the_file_is_already_paid():
    judge = Judge(
        {
            "G1": Payable(paid=False, amount=Decimal("1240.00")),
            "G2": Payable(paid=True, amount=None),
            "G3": Payable(paid=False, amount=Decimal("800.00")),
            "G4": Payable(paid=False, amount=None),
            "G5": Payable(paid=False, amount=Decimal("50.00")),
        }
    )
    outcomes = [
        judge(r).outcome
        for r in (
            row(2, "G1", "1240.00", "paid", "TX1"),
            row(3, "G1", "1240.00", "paid", "TX1"),  # the same payment twice in one file
            row(4, "G2", "10.00", "paid", "TX2"),
            row(5, "G3", "799.99", "paid", "TX3"),
            row(6, "G4", "10.00", "paid", "TX4"),
            row(7, "NOPE", "10.00", "paid", "TX5"),
            row(8, "G5", "50.00", "failed", ""),
        )
    ]
    assert outcomes == [
        Outcome.PAID,
        Outcome.ALREADY_PAID,
        Outcome.ALREADY_PAID,
        Outcome.AMOUNT_MISMATCH,
        Outcome.NOT_PAYABLE,
        Outcome.UNKNOWN_REFERENCE,
        Outcome.FAILED_AT_BANK,
    ]


def _rows() -> list[ExportRow]:
    return [
        ExportRow(
            "CQ-1:P5.2b", "CQ-1:P5.2b", "CQ-1", "P5.2b", "once", Decimal("1240"), "500103", Payee("张三", id_card(7))
        )
    ]


def test_the_csv_payment_file_has_a_bom_for_excel_and_the_full_id_card_and_amount_to_the_fen():
    content = payment_csv(_rows(), lambda c: "渝中区")
    assert content.startswith("\ufeff".encode())
    text = content.decode("utf-8-sig").splitlines()
    assert text[0].split(",") == list(EXPORT_COLUMNS)
    assert text[1] == f"CQ-1:P5.2b,张三,{id_card(7)},1240.00,500103,渝中区,CQ-1,P5.2b,once"


def test_the_excel_payment_file_keeps_the_id_card_as_text_and_reads_back():
    content = payment_xlsx(_rows(), lambda c: "渝中区")
    sheet = load_workbook(io.BytesIO(content)).active
    assert sheet["C2"].value == id_card(7) and sheet["C2"].data_type == "s" and sheet["D2"].value == "1240.00"
    assert (read_table(content)[1].cells or [])[:4] == ["CQ-1:P5.2b", "张三", id_card(7), "1240.00"]


def test_a_return_csv_in_gb18030_is_read():
    table = read_table("付款编号,金额,状态,银行流水号\nCQ-1:P5.2b,1240.00,成功,TX\n".encode("gb18030"))
    assert table[1].cells == ["CQ-1:P5.2b", "1240.00", "成功", "TX"]


def test_a_return_csv_row_that_cannot_be_read_is_reported_on_its_line_and_the_rest_read():
    """A field over the csv module's limit makes that line unreadable, reported as its row's error."""
    huge = "x" * 140_000
    content = (
        f"付款编号,金额,状态,银行流水号\r\nCQ-1:P5.2b,1240.00,成功,TX\r\nCQ-2,{huge},成功,TY\rCQ-3,1e30,成功,TZ\r\n"
    )
    table = read_table(content.encode())
    assert [(r.line, r.cells is None) for r in table] == [(1, False), (2, False), (3, True), (4, False)]
    bad = unreadable_row(table[2].line, table[2].error)
    assert bad.line == 3 and bad.errors[0].field == "line" and "field larger" in bad.errors[0].reason_en
    columns, _ = header_map(table[0].cells or [])
    too_much = parse_return_row(4, table[3].cells or [], columns)
    assert too_much.amount is None and too_much.errors[0].field == "amount_yuan"


def test_id_cards_and_phones_are_masked_as_shown_to_officers():
    assert mask_id_card("500103198001011238") == "500103********1238"
    assert mask_phone("13812345678") == "138****5678" and mask_phone("023-63891234") == "023-****1234"


def test_a_registry_search_text_is_a_whole_id_card_a_masked_one_digits_or_a_name():
    full = id_card(3)
    assert registry_search(full, "s").kind is SearchKind.ID_CARD
    assert registry_search(full, "s").value == hash_id_card(full, "s")
    assert full not in registry_search(full, "s").audited_as  # never kept in clear
    assert registry_search("500103********1238", "s").kind is SearchKind.MASKED
    assert registry_search("1238", "s").kind is SearchKind.DIGITS
    assert registry_search("张三", "s").kind is SearchKind.NAME


def test_a_registry_search_asks_for_one_term_by_equality_and_decides_on_the_candidates():
    """P2.3: a name's part, the district of issue or the last four of a masked number, each found by one
    equality on the record's terms (never a regex: FerretDB decodes the whole registry for one)."""
    record = {"_id": "R1", "name": "张三丰", "id_card_masked": "500103********123X"}
    terms = set(registry_terms(record["name"], record["id_card_masked"]))
    for q in ("三丰", "张", "500103", "5001", "123X", "23x"):
        search = registry_search(q, "s")
        equalities = registry_equalities(search)
        assert any(set(e.values()) <= terms or e == {"_id": q} for e in equalities), q
        assert registry_matches(search, record), q
    assert not registry_matches(registry_search("0103", "s"), record)  # inside the shown digits, neither end
    assert not registry_matches(registry_search("李", "s"), record)
    assert registry_equalities(registry_search("5001031", "s")) == []  # more than a masked number shows
    assert registry_matches(registry_search("R1", "s"), record)
