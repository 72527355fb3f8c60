"""P5.2a part months and the entitlement lifecycle incl. four eyes (P5.2c), pure domain."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from common.errors import DomainError, Forbidden
from services.relief.domain.lifecycle import (
    Conflict,
    EntitlementState,
    Status,
    approve,
    cancel,
    check_payable,
    discharge,
    reject,
)
from services.relief.domain.rules import AmountKind, Schedule
from services.relief.domain.schedule import NotPayable, PartMonthPolicy, monthly_payment, payable_months

pytestmark = pytest.mark.unit
M = Decimal("1240.00")


def pay(period, *, start=date(2021, 2, 10), end=None, today=date(2021, 6, 30), policy=PartMonthPolicy.FULL_MONTH):
    return monthly_payment(M, period, start=start, end=end, today=today, policy=policy)


def test_p52a_full_month_policy_pays_the_confirmation_month_and_the_discharge_month_in_full():
    """P5.2a part months (full_month): any month with a day in hospital is one full monthly payment."""
    assert pay("2021-02", end=date(2021, 3, 5)) == M
    assert pay("2021-03", end=date(2021, 3, 5)) == M


def test_p52a_discharge_mid_month_stops_the_next_month():
    """P5.2a: after a discharge on 2021-03-05, April is not paid."""
    with pytest.raises(NotPayable, match="after discharge"):
        pay("2021-04", end=date(2021, 3, 5))


def test_p52a_no_payment_before_confirmation_or_for_a_month_not_begun():
    with pytest.raises(NotPayable):
        pay("2021-01")
    with pytest.raises(NotPayable):
        pay("2021-07")


def test_p52a_pro_rata_policy_pays_covered_days_of_the_discharge_month_in_arrears():
    """P5.2a part months (pro_rata): 1240 x 5/31 days of March (1st..5th) = 200.00."""
    assert pay("2021-03", end=date(2021, 3, 5), policy=PartMonthPolicy.PRO_RATA) == Decimal("200.00")
    # February 2021: confirmed on the 10th -> 19 of 28 days = 841.43 (half-up to the fen)
    assert pay("2021-02", end=date(2021, 3, 5), policy=PartMonthPolicy.PRO_RATA) == Decimal("841.43")


def test_p52a_pro_rata_policy_does_not_pay_a_month_still_running():
    """P5.2a pro_rata: a running month is paid once it ended (never overpaid)."""
    with pytest.raises(NotPayable, match="pro rata"):
        pay("2021-06", today=date(2021, 6, 15), policy=PartMonthPolicy.PRO_RATA)
    assert pay("2021-05", today=date(2021, 6, 15), policy=PartMonthPolicy.PRO_RATA) == M


def test_payable_months_run_from_confirmation_to_discharge():
    assert payable_months(date(2021, 11, 20), date(2022, 1, 3), date(2022, 5, 1)) == ["2021-11", "2021-12", "2022-01"]


def state(**kw) -> EntitlementState:
    base: dict[str, Any] = {
        "status": Status.PROPOSED,
        "rule_id": "P5.2c",
        "schedule": Schedule.ONCE,
        "amount_kind": AmountKind.CASE_BY_CASE,
        "four_eyes_above": Decimal("3000"),
    }
    return EntitlementState(**(base | kw))


def test_p52c_amount_above_threshold_needs_a_second_officer():
    """P5.2c four eyes: above the threshold, the first signature leaves it pending approval."""
    out = approve(state(), "officer-a", Decimal("5000"))
    assert out.status is Status.PENDING_APPROVAL and out.needs_second_approval and out.amount == Decimal("5000")


def test_p52c_proposer_cannot_approve_their_own_amount():
    """P5.2c four eyes: the proposer cannot approve."""
    pending = state(status=Status.PENDING_APPROVAL, amount=Decimal("5000"), signed_by=("officer-a",))
    with pytest.raises(Forbidden):
        approve(pending, "officer-a", None)
    assert approve(pending, "officer-b", None).status is Status.APPROVED


def test_p52c_at_the_threshold_one_officer_suffices():
    """P5.2c: exactly the threshold is not above it."""
    assert approve(state(), "officer-a", Decimal("3000")).status is Status.APPROVED


def test_p52c_second_officer_cannot_change_the_amount():
    pending = state(status=Status.PENDING_APPROVAL, amount=Decimal("5000"), signed_by=("officer-a",))
    with pytest.raises(DomainError):
        approve(pending, "officer-b", Decimal("6000"))


def test_p52b_officer_sets_amount_within_the_cap_and_not_above():
    """P5.2b: the officer sets the amount; at most the cap (boundary: the cap itself is allowed)."""
    s = state(rule_id="P5.2b", amount_kind=AmountKind.CAPPED, cap=Decimal("1240.00"), four_eyes_above=None)
    assert approve(s, "o", Decimal("1240.00")).amount == Decimal("1240.00")
    with pytest.raises(DomainError, match="exceeds the cap"):
        approve(s, "o", Decimal("1240.01"))
    with pytest.raises(DomainError, match="must set the amount"):
        approve(s, "o", None)


def test_fixed_amounts_cannot_be_changed_and_bad_amounts_are_refused():
    s = state(rule_id="P5.2a", schedule=Schedule.MONTHLY, amount_kind=AmountKind.FIXED, amount=M, four_eyes_above=None)
    assert approve(s, "o", None).amount == M
    with pytest.raises(DomainError):
        approve(s, "o", Decimal("1.00"))
    with pytest.raises(DomainError):
        approve(state(), "o", Decimal("10.001"))
    with pytest.raises(DomainError):
        approve(state(), "o", Decimal("-1"))


def test_lifecycle_transitions():
    assert reject(state()) is Status.REJECTED
    with pytest.raises(Conflict):
        reject(state(status=Status.APPROVED))
    assert cancel(state(status=Status.APPROVED)) is Status.CANCELLED
    with pytest.raises(Conflict):
        cancel(state(status=Status.APPROVED, payments=1))
    with pytest.raises(Conflict):
        approve(state(status=Status.PAID), "o", None)


def test_p52a_discharge_stops_an_approved_monthly_grant_and_only_monthly_ones():
    monthly = state(rule_id="P5.2a", schedule=Schedule.MONTHLY, amount_kind=AmountKind.FIXED, amount=M)
    assert discharge(monthly.__class__(**(monthly.__dict__ | {"status": Status.APPROVED}))) is Status.STOPPED
    assert discharge(monthly) is Status.PROPOSED  # not yet approved: keeps its status, carries the date
    with pytest.raises(Conflict):
        discharge(state(status=Status.APPROVED))


def test_only_approved_or_stopped_monthly_grants_are_payable():
    check_payable(state(status=Status.APPROVED))
    check_payable(state(status=Status.STOPPED, schedule=Schedule.MONTHLY))
    for s in (state(), state(status=Status.PAID), state(status=Status.APPROVED, schedule=Schedule.REVIEW)):
        with pytest.raises(Conflict):
            check_payable(s)
