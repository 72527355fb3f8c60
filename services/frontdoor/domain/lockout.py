"""Repeated failed sign-ins lock an account for a while (a rule of plain data, no I/O)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LockoutPolicy:
    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)  # failures count together when this close
    lockout: timedelta = timedelta(minutes=15)

    @property
    def lookback(self) -> timedelta:
        """How far back attempts can still matter to a lock in force now."""
        return self.window + self.lockout


@dataclass(frozen=True)
class Attempt:
    at: datetime
    ok: bool


def locked_until(
    attempts: Iterable[Attempt], policy: LockoutPolicy, *, reset_at: datetime | None = None
) -> datetime | None:
    """When the lock the attempts earned ends (None: never locked). `max_failures` failures within
    `window` lock the account for `lockout` from the last of them; a successful sign-in, or an admin's
    reset (`reset_at`: new password, re-enabled account), starts the count afresh, and so does the end
    of a lock. Attempts refused while locked are not attempts: they are never recorded, so a stranger
    hammering the account cannot keep its owner out forever."""
    until: datetime | None = None
    streak: list[datetime] = []
    for attempt in sorted(attempts, key=lambda a: a.at):
        if reset_at is not None and attempt.at <= reset_at:
            continue
        if until is not None and attempt.at < until:
            continue
        if attempt.ok:
            streak = []
            continue
        streak = [t for t in streak if attempt.at - t < policy.window] + [attempt.at]
        if len(streak) >= policy.max_failures:
            until, streak = attempt.at + policy.lockout, []
    return until


def is_locked(
    attempts: Iterable[Attempt], policy: LockoutPolicy, *, now: datetime, reset_at: datetime | None = None
) -> datetime | None:
    """The end of the lock in force at `now`, or None."""
    until = locked_until(attempts, policy, reset_at=reset_at)
    return until if until is not None and now < until else None
