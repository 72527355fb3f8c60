"""The bank's payment file and its return file (P6.1: funds arrive directly, on time and in full), as pure
rules: the payment reference of a grant's period, the rows of the file, and what each row of the bank's
return file does.

A payment reference is the entitlement id for a one-time grant (`CQ-20210215-000001:P5.2b`) and the
entitlement id with its month for a monthly one (`CQ-20210215-000001:P5.2a@2021-03`), so a return row
names exactly one (entitlement, period): the key of the ledger's idempotency (`case|rule|period`).

A return row is checked on its own (`parse_return_row`) and then judged against the grants it names
(`judge`): paid, already paid, unknown reference, amount mismatch, failed at the bank, not payable, or
invalid. A bad row never stops the good ones.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from contracts.validation import MAX_YUAN
from services.relief.domain.csvrows import UNREADABLE_EN, UNREADABLE_ZH
from services.relief.domain.money import has_at_most_two_places, yuan

ONCE = "once"
PERIOD = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")

# The payment file's columns, in order (`services/relief/README.md`, "Payments to the bank").
EXPORT_COLUMNS = (
    "reference",  # 付款编号: the entitlement id (and month)
    "payee_name",  # 收款人姓名
    "id_card",  # 收款人身份证号 (in full: the bank pays against it; the export is audited)
    "amount_yuan",  # 金额（元），to the fen
    "district",  # 救助地区县代码 (the paying district, P5.2d)
    "district_name",
    "case_id",  # 案件号
    "rule_id",
    "period",  # once, or the month YYYY-MM
)
# The return file's columns and the other names a bank may give them (Chinese headers included).
RETURN_COLUMNS: Mapping[str, tuple[str, ...]] = {
    "reference": ("reference", "payment_reference", "付款编号", "参考号", "业务编号"),
    "amount_yuan": ("amount_yuan", "amount", "金额", "金额（元）", "金额(元)"),
    "status": ("status", "result", "状态", "结果", "处理结果"),
    "bank_transaction_id": ("bank_transaction_id", "transaction_id", "bank_reference", "银行流水号", "流水号"),
    "date": ("date", "paid_on", "value_date", "日期", "入账日期", "交易日期"),
}
PAID_WORDS = frozenset({"paid", "success", "succeeded", "ok", "成功", "已支付", "已入账"})
FAILED_WORDS = frozenset({"failed", "fail", "failure", "rejected", "returned", "失败", "退回", "退票"})


def reference_of(entitlement_id: str, period: str) -> str:
    """The payment reference of a grant's period."""
    return entitlement_id if period == ONCE else f"{entitlement_id}@{period}"


def parse_reference(reference: str) -> tuple[str, str]:
    """(entitlement id, period) of a payment reference."""
    eid, at, period = reference.strip().rpartition("@")
    return (eid, period) if at and PERIOD.match(period) else (reference.strip(), ONCE)


@dataclass(frozen=True)
class Payee:
    """Who the bank pays: the applicant as the hotline recorded them."""

    name: str
    id_card: str


@dataclass(frozen=True)
class ExportRow:
    reference: str
    entitlement_id: str
    case_id: str
    rule_id: str
    period: str
    amount: Decimal
    district: str
    payee: Payee

    def values(self, district_name: str) -> list[str]:
        """The row's cells in `EXPORT_COLUMNS` order (all text: an ID-card number must not become a number)."""
        return [
            self.reference,
            self.payee.name,
            self.payee.id_card,
            str(yuan(self.amount)),
            self.district,
            district_name,
            self.case_id,
            self.rule_id,
            self.period,
        ]


# ---------------------------------------------------------------------------- the bank's return file


class Outcome(StrEnum):
    PAID = "paid"  # recorded now: the ledger entry and grant.paid
    ALREADY_PAID = "already_paid"  # the period was paid before (or earlier in this file): nothing changed
    UNKNOWN_REFERENCE = "unknown_reference"  # no such grant in the officer's district
    AMOUNT_MISMATCH = "amount_mismatch"  # the bank paid another amount than granted: the officer checks it
    FAILED_AT_BANK = "failed_at_bank"  # the bank could not pay: the grant stays unpaid, in the next file
    NOT_PAYABLE = "not_payable"  # the grant is not approved, or that month is not due
    INVALID = "invalid"  # the row itself is wrong (a missing value, an amount that is not yuan to the fen)


OUTCOME_TEXT: Mapping[Outcome, tuple[str, str]] = {
    Outcome.PAID: ("已登记发放", "payment recorded"),
    Outcome.ALREADY_PAID: ("此前已发放，未重复登记", "already paid: nothing recorded twice"),
    Outcome.UNKNOWN_REFERENCE: ("本区县无此付款编号", "no such payment reference in your district"),
    Outcome.AMOUNT_MISMATCH: ("金额与批准金额不符，未登记", "the amount differs from the granted amount: not recorded"),
    Outcome.FAILED_AT_BANK: ("银行支付失败，仍待发放", "the bank could not pay: still to be paid"),
    Outcome.NOT_PAYABLE: ("该事项当前不可发放", "this grant is not payable now"),
    Outcome.INVALID: ("此行有误", "this row is wrong"),
}


@dataclass(frozen=True)
class RowError:
    field: str
    reason_zh: str
    reason_en: str


@dataclass(frozen=True)
class ReturnRow:
    """One row of the bank's return file, checked on its own (`errors` empty when it is usable)."""

    line: int
    reference: str
    amount: Decimal | None
    paid: bool | None  # True paid, False failed at the bank
    bank_transaction_id: str
    paid_on: date | None
    errors: tuple[RowError, ...] = ()

    @property
    def entitlement_id(self) -> str:
        return parse_reference(self.reference)[0]

    @property
    def period(self) -> str:
        return parse_reference(self.reference)[1]


def unreadable_row(line: int, reason: str) -> ReturnRow:
    """A line of the file the csv module could not read: reported, never applied."""
    error = RowError("line", f"{UNREADABLE_ZH}（{reason}）", f"{UNREADABLE_EN} ({reason})")
    return ReturnRow(line, "", None, None, "", None, (error,))


def header_map(header: Sequence[str]) -> tuple[dict[str, int], list[str]]:
    """Column positions by their names in `RETURN_COLUMNS`, and the columns missing (the date may be)."""
    names = [str(h or "").strip().lstrip("\ufeff").lower() for h in header]
    found: dict[str, int] = {}
    for column, aliases in RETURN_COLUMNS.items():
        for i, name in enumerate(names):
            if name in {a.lower() for a in aliases}:
                found[column] = i
                break
    missing = [c for c in RETURN_COLUMNS if c not in found and c != "date"]
    return found, missing


def parse_return_row(line: int, cells: Sequence[str], columns: Mapping[str, int]) -> ReturnRow:
    def cell(column: str) -> str:
        i = columns.get(column)
        return str(cells[i]).strip() if i is not None and i < len(cells) and cells[i] is not None else ""

    errors: list[RowError] = []
    reference, raw_amount, raw_status = cell("reference"), cell("amount_yuan"), cell("status").lower()
    bank_id, raw_date = cell("bank_transaction_id"), cell("date")
    if not reference:
        errors.append(RowError("reference", "付款编号缺失", "payment reference missing"))
    amount: Decimal | None = None
    try:
        amount = Decimal(raw_amount.replace(",", ""))
        if not amount.is_finite() or not 0 < amount <= MAX_YUAN or not has_at_most_two_places(amount):
            raise ValueError(raw_amount)
        amount = yuan(amount)
    except (ArithmeticError, ValueError):
        amount = None
        errors.append(
            RowError(
                "amount_yuan", "金额应为正数，最多两位小数（元）", "the amount is positive yuan, at most 2 decimals"
            )
        )
    paid = True if raw_status in PAID_WORDS else False if raw_status in FAILED_WORDS else None
    if paid is None:
        errors.append(RowError("status", "状态应为 paid（成功）或 failed（失败）", "status must be paid or failed"))
    if paid and not bank_id:
        errors.append(RowError("bank_transaction_id", "已支付的行须有银行流水号", "a paid row needs the bank's id"))
    paid_on: date | None = None
    if raw_date:
        try:
            paid_on = date.fromisoformat(raw_date[:10])
        except ValueError:
            errors.append(RowError("date", "日期格式应为 YYYY-MM-DD", "a date is written YYYY-MM-DD"))
    return ReturnRow(line, reference, amount, paid, bank_id, paid_on, tuple(errors))


@dataclass(frozen=True)
class Payable:
    """What relief knows of a referenced grant: whether the period is paid, and if not, what it would pay."""

    paid: bool
    amount: Decimal | None  # None: the period is not payable now


@dataclass(frozen=True)
class Judgement:
    row: ReturnRow
    outcome: Outcome
    expected: Decimal | None = None
    errors: tuple[RowError, ...] = ()


@dataclass
class Judge:
    """Judges the rows of one file in order: a reference paid by an earlier row is already paid."""

    known: Mapping[str, Payable]  # by payment reference, only the officer's district's grants
    taken: set[str] = field(default_factory=set)

    def __call__(self, row: ReturnRow) -> Judgement:
        if row.errors:
            return Judgement(row, Outcome.INVALID, errors=row.errors)
        key = reference_of(row.entitlement_id, row.period)
        found = self.known.get(key)
        if found is None:
            return Judgement(row, Outcome.UNKNOWN_REFERENCE)
        if found.paid or key in self.taken:
            return Judgement(row, Outcome.ALREADY_PAID, expected=found.amount)
        if not row.paid:
            return Judgement(row, Outcome.FAILED_AT_BANK, expected=found.amount)
        if found.amount is None:
            return Judgement(row, Outcome.NOT_PAYABLE)
        if row.amount != found.amount:
            return Judgement(row, Outcome.AMOUNT_MISMATCH, expected=found.amount)
        self.taken.add(key)
        return Judgement(row, Outcome.PAID, expected=found.amount)
