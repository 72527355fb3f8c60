"""Callback and satisfaction (回访) and follow-up rules (pure)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from common.errors import DomainError

Satisfaction = Literal["satisfied", "basically_satisfied", "dissatisfied"]
CALLBACK_ALLOWED = frozenset({"resolved", "closed"})
REOPEN_RULE = "H-CALLBACK-REOPEN"  # P6.2: a dissatisfied caller's case is handled again


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
