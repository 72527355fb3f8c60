"""Callback and satisfaction (回访) and follow-up rules (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Literal

from common.errors import DomainError
from contracts.events.base import BUSINESS_TZ

Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]
CALLBACK_ALLOWED = frozenset({"resolved", "closed"})
REOPEN_RULE = "H-CALLBACK-REOPEN"  # P6.2: a dissatisfied caller's case is handled again
# P6.2 (办结回访, "handling standardised"): a resolved case's caller is called back within a set time of the
# resolution (`HOTLINE_CALLBACK_DUE_HOURS`, default 72); the worklist shows those due today and overdue.
DUE_RULE = "H-CALLBACK-DUE"
DEFAULT_CALLBACK_DUE_HOURS = 72


def callback_due_at(resolved_at: datetime, due_hours: float) -> datetime:
    """When the callback of a resolution is due (H-CALLBACK-DUE, P6.2)."""
    return resolved_at + timedelta(hours=due_hours)


def end_of_business_day(now: datetime) -> datetime:
    """The end of `now`'s Chongqing calendar day (the worklist's "due today" bound)."""
    local = now.astimezone(BUSINESS_TZ)
    return datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=BUSINESS_TZ)


def resolved_by_for_due_list(now: datetime, due_hours: float, *, upcoming: bool) -> datetime | None:
    """The latest resolution time whose callback is due by the end of today (None: every resolution, the
    ones not yet due included, when `upcoming` is asked for)."""
    if upcoming:
        return None
    return end_of_business_day(now) - timedelta(hours=due_hours)


@dataclass(frozen=True)
class CallbackOutcome:
    reopen: bool
    reason: str


def decide_callback(status: str, satisfaction: Satisfaction, *, called_back: bool = False) -> CallbackOutcome:
    """A callback comes after resolution, once per resolution (`called_back`: this resolution has had its
    callback); a dissatisfied caller reopens the case (P6.2), and its next resolution takes a new one."""
    if status not in CALLBACK_ALLOWED:
        raise DomainError(
            f"案件尚未办结（当前：{status}），办结后才能回访",
            f"the case is not resolved yet (now: {status}); call back after resolution",
            field="case_id",
            code="not_resolved",
        )
    if called_back:
        raise DomainError(
            "本次办结已回访过，不能重复回访；案件重启后再次办结时可再回访",
            "This resolution already has its callback; only a case reopened and resolved again takes a new one",
            field="case_id",
            code="already_called_back",
        )
    if satisfaction == "dissatisfied":
        return CallbackOutcome(True, f"{REOPEN_RULE}: caller dissatisfied at callback (P6.2)")
    return CallbackOutcome(False, "")


def follow_up_target(case_id: str, status: str, merged_into: str | None) -> str:
    """A follow-up call goes to the open case: a merged child's calls go to the case it was merged into."""
    if status == "merged" and merged_into:
        return merged_into
    if status == "closed":
        raise DomainError(
            "案件已关闭，请作为新来电受理",
            "the case is closed; take the call as a new request",
            field="case_id",
            code="case_closed",
        )
    return case_id
