"""The working-day calendar in force (P6.2): the packaged State Council schedules plus the years an admin
added through the API (kept in the store), validated at start-up and on every addition.

A year posted is validated as a whole (`domain.workdays.parse_years`), stored as it was posted, and
counted from then on: deadlines computed after it count it; deadlines already computed keep the ones
they had (a case's targets keep their own rest days, see `domain.clocks.TargetState`).
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import structlog

from common.errors import DomainError
from services.notify.domain.workdays import CalendarYear, WorkCalendar, parse_years
from services.notify.schemas import CalendarDay, CalendarYearView
from services.notify.store import NotifyStore

log = structlog.get_logger("notify.calendar")


def warn_uncovered(year: int) -> None:
    """Told once per year by the calendar: a day target ran into a year it does not hold."""
    log.warning(
        "the working-day calendar has no schedule for this year: its days count Monday to Friday only; "
        "add it with POST /api/v1/calendar/{year}",
        year=year,
    )


NEXT_YEAR_FROM_MONTH = 10  # the State Council publishes the next year's schedule in October or November


def missing_years(work_calendar: WorkCalendar, today: date) -> list[int]:
    """The years the calendar should hold by `today` and does not: this year, and from October the next
    one (deadlines of cases received late in the year run into it). Their days count Monday to Friday
    until an admin adds them, so the coordinator's page says so."""
    wanted = [today.year, today.year + 1] if today.month >= NEXT_YEAR_FROM_MONTH else [today.year]
    return [year for year in wanted if not work_calendar.covers(year)]


def stored_source(doc: dict[str, object]) -> str:
    return f"added by {doc.get('added_by')} at {doc.get('added_at')}"


async def restore(store: NotifyStore, work_calendar: WorkCalendar) -> None:
    """Add the years an admin stored to the packaged calendar; a stored year that no longer validates
    stops the start-up (as an invalid policy file does)."""
    work_calendar.on_uncovered = warn_uncovered
    for doc in await store.stored_calendar_years():
        year = int(str(doc["_id"]))
        if work_calendar.covers(year):
            continue  # a release now ships that year: the packaged file wins
        parsed = parse_years(str(doc["csv"]), source=stored_source(doc), only=year)
        work_calendar.add_year(parsed[year])
    log.info("working-day calendar", years=sorted(work_calendar.years))


async def add_year(store: NotifyStore, work_calendar: WorkCalendar, year: int, text: str, by: str) -> CalendarYear:
    """Validate and keep one year's schedule; refused when the calendar holds that year already."""
    if work_calendar.covers(year):
        raise DomainError(
            f"{year}年的节假日安排已在日历中（{work_calendar.years[year].source}）",
            f"the calendar holds {year} already ({work_calendar.years[year].source})",
            field="year",
            code="year_exists",
        )
    parsed = parse_years(text, source="posted", only=year)[year]
    now = datetime.now(UTC)
    if not await store.add_calendar_year(year, text, added_by=by, added_at=now):
        raise DomainError(
            f"{year}年的节假日安排刚由他人添加",
            f"{year} was just added by someone else",
            field="year",
            code="year_exists",
        )
    stored = CalendarYear(year, parsed.days, stored_source({"added_by": by, "added_at": now}))
    work_calendar.add_year(stored)
    log.info("working-day calendar year added", year=year, by=by, holidays=stored.holidays, workdays=stored.workdays)
    return stored


def year_view(year: CalendarYear) -> CalendarYearView:
    return CalendarYearView(
        year=year.year,
        source=year.source,
        holidays=year.holidays,
        workdays=year.workdays,
        days=[CalendarDay(date=d.day, kind=d.kind, name_zh=d.name_zh, name_en=d.name_en) for d in year.days],
    )
