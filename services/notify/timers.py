"""Durable timers as values: what a timer is, and the time bucket it is stored in.

A sweep must cost what is due, not what is pending. On MongoDB a single collection with a `due_at` index
and a range query with a limit gives that. FerretDB 1.24 on SQLite does not push a range filter, a sort
or even an `_id` lookup down to an index (its `explain` shows `filterPushdown: false` and a full SCAN), so
a sweep over one collection reads every pending timer. Each timer therefore lives in the collection of its
bucket (`<prefix>_<epoch>`, `bucket_s` wide); a small registry lists the buckets. A sweep reads the
registry, then runs the `due_at` range query with a limit only in the buckets whose time has come: on
either store its cost follows the number of timers due (plus those sharing the current bucket). The
queries themselves are the store's (`store.TimerWheel`).

Timers are never written into a bucket that has already begun (a late timer goes into the current one),
so a past bucket only shrinks and is dropped once empty.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from common.store import gather_all


@dataclass(frozen=True)
class Timer:
    id: str
    due_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class DueTimer:
    bucket: int
    id: str
    due_at: datetime
    payload: dict[str, Any]


def bucket_of(due_at: datetime, now: datetime, bucket_s: int) -> int:
    """The bucket of a timer: its own, or the current one when its time is already past."""
    return int(max(due_at, now).timestamp()) // bucket_s * bucket_s


def past_horizon(now: datetime, grace: timedelta, bucket_s: int) -> int:
    """Buckets starting at or before this epoch are over (and their grace too): empty ones can go."""
    return int((now - grace).timestamp()) - bucket_s


FIRE_CONCURRENCY = 16  # cases whose due timers run at the same time


async def by_case(
    timers: list[DueTimer], case_of: Callable[[DueTimer], str], run: Callable[[DueTimer], Awaitable[object]]
) -> None:
    """Run the timers of different cases at the same time (`FIRE_CONCURRENCY` at most) and each case's in
    order; the first failure is raised once all have run."""
    cases: dict[str, list[DueTimer]] = {}
    for timer in timers:
        cases.setdefault(case_of(timer), []).append(timer)
    slots = asyncio.Semaphore(FIRE_CONCURRENCY)

    async def one_case(of_case: list[DueTimer]) -> None:
        async with slots:
            for timer in of_case:
                await run(timer)

    await gather_all(one_case(t) for t in cases.values())
