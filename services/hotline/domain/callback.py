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


def decide_callback(status: str, satisfaction: Satisfaction) -> CallbackOutcome:
    """A callback comes after resolution; a dissatisfied caller reopens the case (P6.2)."""
    if status not in CALLBACK_ALLOWED:
        raise DomainError(
            f"案件尚未办结（当前：{status}），办结后才能回访",
            f"the case is not resolved yet (now: {status}); call back after resolution",
            field="case_id",
            code="not_resolved",
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
