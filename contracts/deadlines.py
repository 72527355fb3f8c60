"""Deadlines stated as a point of the calendar ("by the end of the day", "by the end of the month"), in one
definition that every service computes them with: the router's department tasks and notify's clocks agree
on the moment a same-day hazard is due (P4.1 日排查、日报告、日整治、日清零) and a payment of the month (P2.1).

Each service keeps its own policy data (which classes use which point, and the floor); this module only
says what the point means: local midnight ending the day (or the month) the clock started in, in the
business timezone, or `start + at_least` when that is later (a report at 23:50 is not due at 23:59).
"""

from __future__ import annotations

import calendar
from datetime import datetime, time, timedelta, tzinfo
from typing import Literal

CalendarPoint = Literal["end_of_day", "end_of_month"]


def calendar_due(start: datetime, by: CalendarPoint, tz: tzinfo, at_least: timedelta = timedelta(0)) -> datetime:
    """The deadline of a clock started at `start` (timezone-aware) that must be met `by` the end of its day or
    month in `tz`, and never less than `at_least` after the start."""
    if start.tzinfo is None:
        raise ValueError("a deadline's start needs a timezone")
    local = start.astimezone(tz)
    if by == "end_of_day":
        last_day = local.date()
    elif by == "end_of_month":
        last_day = local.date().replace(day=calendar.monthrange(local.year, local.month)[1])
    else:  # pragma: no cover - the Literal keeps this out
        raise ValueError(f"unknown calendar point {by!r}")
    end = datetime.combine(last_day + timedelta(days=1), time(0), tz)
    return max(end, start + at_least)
