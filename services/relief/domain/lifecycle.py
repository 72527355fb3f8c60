"""The entitlement lifecycle: proposed -> pending_approval -> approved -> paid / rejected / cancelled /
stopped, as pure decisions on the entitlement's current state. The store applies them atomically."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from common.errors import DomainError, Forbidden
from services.relief.domain.money import has_at_most_two_places
from services.relief.domain.rules import AmountKind, Schedule


class Status(StrEnum):
    PROPOSED = "proposed"
    PENDING_APPROVAL = "pending_approval"  # signed by one officer, waiting for a second (P5.2c)
    APPROVED = "approved"  # ready to pay; a monthly grant stays here while it runs
    PAID = "paid"  # a one-time grant was paid
    REJECTED = "rejected"
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # a monthly grant ended (discharge, P5.2a)


OPEN = (Status.PROPOSED, Status.PENDING_APPROVAL)


class Conflict(DomainError):
    status = 409
    code = "invalid_state"


@dataclass(frozen=True)
class EntitlementState:
    """What the decisions need to know about one entitlement."""

    status: Status
    rule_id: str
    schedule: Schedule
    amount_kind: AmountKind
    amount: Decimal | None = None
    cap: Decimal | None = None
    four_eyes_above: Decimal | None = None  # P5.2c: above this, a second officer must approve
    signed_by: tuple[str, ...] = ()
    payments: int = 0


@dataclass(frozen=True)
class ApprovalOutcome:
    status: Status
    amount: Decimal | None
    needs_second_approval: bool


def _amount_error(zh: str, en: str) -> DomainError:
    return DomainError(zh, en, field="amount_yuan", status=422, code="invalid_amount")


def resolve_amount(state: EntitlementState, given: Decimal | None) -> Decimal | None:
    """The amount to approve: fixed by the rule, or set by the officer within the rule's limits."""
    if given is not None and (given <= 0 or not has_at_most_two_places(given)):
        raise _amount_error("金额须大于0且最多两位小数", "the amount must be positive with at most two decimals")
    kind = state.amount_kind
    if kind is AmountKind.FIXED:
        if given is not None and given != state.amount:
            raise _amount_error(
                f"本项金额由规则确定为 {state.amount} 元", f"this amount is fixed by the rule at {state.amount} yuan"
            )
        return state.amount
    if kind is AmountKind.NONE:
        if given is not None:
            raise _amount_error("本项无需金额", "this entitlement takes no amount")
        return None
    if given is None:
        raise _amount_error("请填写救助金额", "the officer must set the amount")
    if kind is AmountKind.CAPPED and state.cap is not None and given > state.cap:
        raise _amount_error(f"金额超过上限 {state.cap} 元", f"the amount exceeds the cap of {state.cap} yuan")
    return given


def approve(state: EntitlementState, officer: str, given: Decimal | None) -> ApprovalOutcome:
    """An officer signs the entitlement off. Above the four-eyes threshold (P5.2c) the first signature
    leaves it pending; a second, different officer approves it; the proposer cannot approve."""
    if state.status is Status.PENDING_APPROVAL:
        if officer in state.signed_by:
            raise Forbidden(
                "您已签署此项救助，不能再次审批：需另一名经办人复核",
                "you already signed this grant and cannot approve it again: it needs a second officer",
                code="four_eyes",
            )
        if given is not None and given != state.amount:
            raise _amount_error(
                f"复核金额须与拟定金额 {state.amount} 元一致",
                f"the second approval must keep the proposed amount of {state.amount} yuan",
            )
        return ApprovalOutcome(Status.APPROVED, state.amount, needs_second_approval=False)
    if state.status is not Status.PROPOSED:
        raise Conflict(f"当前状态为 {state.status}，不能审批", f"cannot approve an entitlement that is {state.status}")
    amount = resolve_amount(state, given)
    if state.four_eyes_above is not None and amount is not None and amount > state.four_eyes_above:
        return ApprovalOutcome(Status.PENDING_APPROVAL, amount, needs_second_approval=True)
    return ApprovalOutcome(Status.APPROVED, amount, needs_second_approval=False)


def reject(state: EntitlementState) -> Status:
    if state.status not in OPEN:
        raise Conflict(f"当前状态为 {state.status}，不能驳回", f"cannot reject an entitlement that is {state.status}")
    return Status.REJECTED


def cancel(state: EntitlementState) -> Status:
    if state.status not in (*OPEN, Status.APPROVED) or state.payments:
        raise Conflict("已发放或已结束的救助不能撤销", "cannot cancel an entitlement already paid or closed")
    return Status.CANCELLED


def discharge(state: EntitlementState) -> Status:
    """P5.2a discharge: an approved monthly grant stops (months up to the discharge stay payable); an
    open one keeps its status and carries the discharge date, so its approval pays only up to it."""
    if state.schedule is not Schedule.MONTHLY:
        raise Conflict("只有按月发放的救助可以停发", "only a monthly grant can be stopped", code="not_monthly")
    if state.status is Status.APPROVED:
        return Status.STOPPED
    if state.status in OPEN:
        return state.status
    raise Conflict(f"当前状态为 {state.status}，不能停发", f"cannot stop an entitlement that is {state.status}")


def check_payable(state: EntitlementState) -> None:
    """Only approved grants are paid (a stopped monthly grant still pays its months up to discharge)."""
    if state.schedule is Schedule.REVIEW:
        raise Conflict("低保申请审核不在此发放", "a dibao review is not paid here", code="not_payable")
    if state.status is Status.APPROVED or (state.status is Status.STOPPED and state.schedule is Schedule.MONTHLY):
        return
    raise Conflict(
        f"当前状态为 {state.status}，不能发放", f"cannot pay an entitlement that is {state.status}", code="not_payable"
    )
