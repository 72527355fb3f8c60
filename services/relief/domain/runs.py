"""Batch subsidy runs over the registry: P1.3 price-subsidy linkage and P2.1 holiday subsidy.

A run pays each eligible recipient exactly once: the ledger's idempotency key is (run, recipient). A
recipient in several eligible categories is paid once, at the highest of their categories' amounts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from services.relief.domain.facts import Category
from services.relief.domain.schedule import month_bounds


class RunKind(StrEnum):
    PRICE_LINKAGE = "price_linkage"  # P1.3 临时价格补贴
    HOLIDAY = "holiday"  # P2.1 节日补贴


RUN_PROVISION = {RunKind.PRICE_LINKAGE: "P1.3", RunKind.HOLIDAY: "P2.1"}

# Who each run may pay (POLICY.md P1.3 and P2.1).
RUN_CATEGORIES: dict[RunKind, frozenset[Category]] = {
    RunKind.PRICE_LINKAGE: frozenset({Category.DIBAO, Category.TEKUN, Category.YOUFU, Category.UNEMPLOYMENT_BENEFIT}),
    RunKind.HOLIDAY: frozenset({Category.DIBAO, Category.TEKUN, Category.ORPHAN, Category.UNSUPPORTED_CHILD}),
}
LABEL_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,31}$")


def run_id_for(kind: RunKind, month: str, label: str, scope: str) -> str:
    """The run's identity: opening the same run twice (a double click) cannot create a second one."""
    return f"{RUN_PROVISION[RunKind(kind)]}-{month}-{label}-{scope}"


def ineligible_categories(kind: RunKind, categories: set[Category] | frozenset[Category]) -> list[str]:
    return sorted(str(c) for c in categories if c not in RUN_CATEGORIES[RunKind(kind)])


@dataclass(frozen=True)
class RunSpec:
    run_id: str
    kind: RunKind
    month: str  # YYYY-MM
    districts: frozenset[str]
    amounts: dict[Category, Decimal]  # yuan per person, by category

    @property
    def due_on(self) -> date:
        """P2.1: paid within the month, so people newly approved in it are paid in it too."""
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
    matched = [(spec.amounts[c], c) for c in sorted(recipient.categories) if c in spec.amounts]
    if not matched:
        return None
    return max(matched, key=lambda pair: pair[0])
