"""Batch runs over the registry: P1.3 price-subsidy linkage, and P2.1's holiday subsidy, first payment of
the newly approved and the month's allowance paid before the festival.

A run pays each eligible recipient exactly once: the ledger's idempotency key is (run, recipient). A
recipient in several eligible categories is paid once, at the highest of their categories' amounts. Each
payment records who funds it (P1.3: city and district finance, or the unemployment insurance fund).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from enum import StrEnum

from services.relief.domain.facts import Category
from services.relief.domain.schedule import month_bounds


class RunKind(StrEnum):
    PRICE_LINKAGE = "price_linkage"  # P1.3 临时价格补贴
    HOLIDAY = "holiday"  # P2.1 节日补贴
    FIRST_PAYMENT = "first_payment"  # P2.1 当月审批当月发放: the allowance of those approved in the month
    PRE_HOLIDAY = "pre_holiday"  # P2.1 the month's dibao/tekun allowance, paid before the festival


class FundingSource(StrEnum):
    CITY_DISTRICT_FINANCE = "city_district_finance"  # 市、区县财政
    UNEMPLOYMENT_INSURANCE_FUND = "unemployment_insurance_fund"  # 失业保险基金


RUN_PROVISION = {
    RunKind.PRICE_LINKAGE: "P1.3",
    RunKind.HOLIDAY: "P2.1",
    RunKind.FIRST_PAYMENT: "P2.1",
    RunKind.PRE_HOLIDAY: "P2.1",
}

# Who each run may pay (POLICY.md P1.3 and P2.1).
ALLOWANCE = frozenset({Category.DIBAO, Category.TEKUN})
RUN_CATEGORIES: dict[RunKind, frozenset[Category]] = {
    RunKind.PRICE_LINKAGE: frozenset({Category.DIBAO, Category.TEKUN, Category.YOUFU, Category.UNEMPLOYMENT_BENEFIT}),
    RunKind.HOLIDAY: frozenset({Category.DIBAO, Category.TEKUN, Category.ORPHAN, Category.UNSUPPORTED_CHILD}),
    RunKind.FIRST_PAYMENT: ALLOWANCE,
    RunKind.PRE_HOLIDAY: ALLOWANCE,
}
LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def funding_source(kind: RunKind, category: Category) -> FundingSource:
    """P1.3: unemployment-insurance and unemployment-subsidy recipients' price subsidy comes from the
    unemployment insurance fund; everything else a run pays, from city and district finance."""
    if RunKind(kind) is RunKind.PRICE_LINKAGE and category is Category.UNEMPLOYMENT_BENEFIT:
        return FundingSource.UNEMPLOYMENT_INSURANCE_FUND
    return FundingSource.CITY_DISTRICT_FINANCE


def run_id_for(kind: RunKind, month: str, label: str, scope: str) -> str:
    """The run's identity: opening the same run twice (a double click) cannot create a second one. The
    first two kinds keep their original ids; the other P2.1 runs name their kind."""
    kind = RunKind(kind)
    named = "" if kind in (RunKind.PRICE_LINKAGE, RunKind.HOLIDAY) else f"{kind.value.replace('_', '-')}-"
    return f"{RUN_PROVISION[kind]}-{named}{month}-{label}-{scope}"


def pay_before_error(kind: RunKind, month: str, pay_before: date | None) -> str | None:
    """Why `pay_before` does not fit the run ("中文 | English"), or None. A pre-holiday run is paid before
    the festival day the coordinator gives, which falls in the run's month (P2.1); other runs take none."""
    if RunKind(kind) is not RunKind.PRE_HOLIDAY:
        return None if pay_before is None else "只有节前发放批次需要节日日期 | only a pre-holiday run takes pay_before"
    if pay_before is None:
        return "节前发放须填写节日日期（如春节） | a pre-holiday run needs the festival day (e.g. the Spring Festival)"
    first, last = month_bounds(month)
    if not first < pay_before <= last + timedelta(days=1):
        return f"节日日期须在 {month} 月内 | the festival day must fall in {month}"
    return None


def ineligible_categories(kind: RunKind, categories: set[Category] | frozenset[Category]) -> list[str]:
    return sorted(str(c) for c in categories if c not in RUN_CATEGORIES[RunKind(kind)])


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    kind: RunKind
    month: str  # YYYY-MM
    districts: frozenset[str]
    amounts: dict[Category, Decimal]  # yuan per person, by category
    pay_before: date | None = None  # PRE_HOLIDAY: the festival day (given by the coordinator)

    @property
    def due_on(self) -> date:
        """P2.1: paid within the month, so people newly approved in it are paid in it too; a pre-holiday run
        by the day before the festival."""
        if self.pay_before is not None:
            return self.pay_before - timedelta(days=1)
        return month_bounds(self.month)[1]


@dataclass(frozen=True)
class Recipient:
    recipient_id: str
    district: str
    categories: frozenset[Category]
    approved_on: date
    ended_on: date | None = None


def run_payment(spec: RunSpec, recipient: Recipient) -> tuple[Decimal, Category] | None:
    """What the run pays this recipient (amount and the category it is paid for), or None."""
    if recipient.district not in spec.districts:
        return None
    first, last = month_bounds(spec.month)
    if recipient.approved_on > last or (recipient.ended_on is not None and recipient.ended_on < first):
        return None  # not in the registry during the run's month
    if RunKind(spec.kind) is RunKind.FIRST_PAYMENT and recipient.approved_on < first:
        return None  # approved earlier: their allowance is the monthly payment's, not a first payment
    matched = [(spec.amounts[c], c) for c in sorted(recipient.categories) if c in spec.amounts]
    if not matched:
        return None
    return max(matched, key=lambda pair: pair[0])
