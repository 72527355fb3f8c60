"""P5.2a monthly payments from confirmation until discharge, and how part months are paid.

Two policies, chosen by the deployer (`RELIEF_PART_MONTH_POLICY`):

- `full_month` (default): every calendar month with at least one day between confirmation and
  discharge (both inclusive) is paid in full, and may be paid from the first day of that month (in
  advance, so help comes in time, P6.2). A discharge mid-month keeps that month's payment; no later
  month is paid.
- `pro_rata`: a month pays `monthly x covered days / days in the month`, rounded half-up to the fen;
  a month can be paid only once it has ended or the patient was discharged in it (in arrears), so
  nothing is ever overpaid.
"""

from __future__ import annotations

import calendar
import re
from datetime import date
from decimal import Decimal
from enum import StrEnum

from common.errors import DomainError
from services.relief.domain.money import yuan

PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


class PartMonthPolicy(StrEnum):
    FULL_MONTH = "full_month"
    PRO_RATA = "pro_rata"


class NotPayable(DomainError):
    status = 409
    code = "period_not_payable"


def parse_period(period: str) -> tuple[int, int]:
    m = PERIOD_PATTERN.match(period)
    if not m:
        raise NotPayable("期间格式应为 YYYY-MM", "a monthly period is written YYYY-MM", field="period", status=422)
    return int(m.group(1)), int(m.group(2))


def month_of(day: date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def month_bounds(period: str) -> tuple[date, date]:
    year, month = parse_period(period)
    return date(year, month, 1), date(year, month, calendar.monthrange(year, month)[1])


def payable_months(start: date, end: date | None, today: date) -> list[str]:
    """Every month from the confirmation month to the discharge month (or this month), as YYYY-MM."""
    last = end or today
    out, year, month = [], start.year, start.month
    while (year, month) <= (last.year, last.month):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def monthly_payment(
    monthly: Decimal,
    period: str,
    *,
    start: date,
    end: date | None,
    today: date,
    policy: PartMonthPolicy = PartMonthPolicy.FULL_MONTH,
) -> Decimal:
    """The P5.2a payment due for `period`; raises NotPayable when that month is outside the entitlement."""
    first, last = month_bounds(period)
    if last < start:
        raise NotPayable(f"{period} 早于确诊月份", f"{period} is before the month of confirmation", field="period")
    if end is not None and first > end:
        raise NotPayable(
            f"{period} 晚于出院月份，已停发", f"{period} is after discharge: payments stopped", field="period"
        )
    if first > today:
        raise NotPayable(f"{period} 尚未到来", f"{period} has not begun yet", field="period")
    if PartMonthPolicy(policy) is PartMonthPolicy.FULL_MONTH:
        return yuan(monthly)
    covered_to = min(last, end) if end is not None else last
    if covered_to > today or (end is None and last >= today):
        raise NotPayable(
            f"{period} 按天计发，须月末或出院后发放",
            f"{period} is paid pro rata, once the month ended or the patient was discharged",
            field="period",
        )
    covered_from = max(first, start)
    days = (covered_to - covered_from).days + 1
    return yuan(monthly * days / last.day)
