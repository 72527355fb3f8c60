"""Working days (工作日): the State Council's public holidays and make-up workdays (调休), year by year, as
validated data, and working-time arithmetic over them (P6.2 "assistance comes in time", counted the way
departments count: in working days).

A year is loaded whole: its CSV lists every day off (`holiday`) and every make-up working day that falls on
a weekend (`workday`); every other Saturday and Sunday is a rest day, every other weekday a working day.
A date in a year the calendar does not hold counts Monday to Friday only (the schedule is published each
November: a deployment adds it as data), and the calendar says so once per year through `on_uncovered`.

Pure: parsing takes the CSV's text; the service reads the files and the store.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from typing import Literal

from common.errors import DomainError

Kind = Literal["holiday", "workday"]
COLUMNS = ("date", "weekday", "kind", "name_zh", "name_en")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
# 全国年节及纪念日放假办法 (revised by State Council decree 793, in force from 2025): 13 days of public
# holidays a year (元旦 1, 春节 4, 清明 1, 劳动节 2, 端午 1, 中秋 1, 国庆 3). A holiday on a weekend is made up on a
# weekday and every bridge day is worked on a weekend, so a complete year's weekday holidays minus its
# make-up workdays are exactly these 13 days: a year missing a festival or a make-up day is refused.
STATUTORY_DAYS_OFF = 13
DAY = timedelta(days=1)

RestSpan = tuple[datetime, datetime]  # [start, end) of consecutive non-working days, as instants


class CalendarError(DomainError):
    status = 422
    code = "invalid_calendar"


@dataclass(frozen=True)
class ScheduledDay:
    day: date
    kind: Kind
    name_zh: str
    name_en: str


@dataclass(frozen=True)
class CalendarYear:
    """One year's schedule: its days off and its make-up workdays; `source` says where it came from."""

    year: int
    days: tuple[ScheduledDay, ...]
    source: str
    # Asked for every day a deadline spans, several times per case: a lookup, not a scan of the year's days.
    _kinds: dict[date, Kind] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_kinds", {d.day: d.kind for d in self.days})

    def kind_of(self, day: date) -> Kind | None:
        return self._kinds.get(day)

    def is_working(self, day: date) -> bool:
        kind = self.kind_of(day)
        if kind is not None:
            return kind == "workday"
        return day.weekday() < 5

    @property
    def holidays(self) -> int:
        return sum(1 for d in self.days if d.kind == "holiday")

    @property
    def workdays(self) -> int:
        return sum(1 for d in self.days if d.kind == "workday")


def _refuse(line: int, column: str, zh: str, en: str) -> CalendarError:
    return CalendarError(f"第{line}行 {column}：{zh}", f"line {line}, {column}: {en}", field=f"line {line}: {column}")


def parse_years(text: str, *, source: str, only: int | None = None) -> dict[int, CalendarYear]:
    """Validate a schedule CSV (columns date, weekday, kind, name_zh, name_en) and split it by year; with
    `only`, every row must be in that year. Raises CalendarError naming the line, the column and why."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise CalendarError(
            f"表头须为 {','.join(COLUMNS)}", f"the header must be {','.join(COLUMNS)}", field="line 1: header"
        )
    by_year: dict[int, list[ScheduledDay]] = {}
    seen: set[date] = set()
    for line, row in enumerate(reader, start=2):
        try:
            day = date.fromisoformat(row["date"] or "")
        except ValueError:
            raise _refuse(line, "date", "日期须为 YYYY-MM-DD", f"{row['date']!r} is not a date (YYYY-MM-DD)") from None
        if only is not None and day.year != only:
            raise _refuse(line, "date", f"日期不在{only}年内", f"{day} is not in {only}")
        if day in seen:
            raise _refuse(line, "date", "日期重复", f"{day} is listed twice")
        seen.add(day)
        if row["weekday"] != WEEKDAYS[day.weekday()]:
            raise _refuse(
                line,
                "weekday",
                f"{day} 是 {WEEKDAYS[day.weekday()]}，不是 {row['weekday']}",
                f"{day} is a {WEEKDAYS[day.weekday()]}, not {row['weekday']!r}",
            )
        kind = row["kind"]
        if kind not in ("holiday", "workday"):
            raise _refuse(line, "kind", "须为 holiday 或 workday", f"{kind!r} must be holiday or workday")
        if kind == "workday" and day.weekday() < 5:
            raise _refuse(line, "kind", "调休上班日须在周六或周日", "a make-up workday falls on a Saturday or a Sunday")
        if not (row["name_zh"] or "").strip() or not (row["name_en"] or "").strip():
            raise _refuse(line, "name_zh/name_en", "须填写节日名称（中英文）", "name the day in Chinese and English")
        named = ScheduledDay(
            day, "holiday" if kind == "holiday" else "workday", row["name_zh"].strip(), row["name_en"].strip()
        )
        by_year.setdefault(day.year, []).append(named)
    if only is not None and only not in by_year:
        raise CalendarError(f"没有{only}年的安排", f"no day of {only} is listed", field="body")
    years = {}
    for year, days in by_year.items():
        off = sum(1 for d in days if d.kind == "holiday" and d.day.weekday() < 5)
        made_up = sum(1 for d in days if d.kind == "workday")
        if off - made_up != STATUTORY_DAYS_OFF:
            raise CalendarError(
                f"{year}年安排不完整：工作日放假{off}天、调休上班{made_up}天，净放假应为{STATUTORY_DAYS_OFF}天（全国年节及纪念日放假办法）",
                f"{year} is incomplete: {off} weekday holidays less {made_up} make-up workdays should be "
                f"{STATUTORY_DAYS_OFF} days off (the national public-holiday regulation)",
                field="body",
            )
        years[year] = CalendarYear(year, tuple(sorted(days, key=lambda d: d.day)), source)
    return years


@dataclass
class WorkCalendar:
    """The working-day calendar in force: the years it holds, in the policy's time zone. An admin may add
    a year while the service runs (`add_year`); a year it does not hold counts weekdays only."""

    tz: timezone
    years: dict[int, CalendarYear] = field(default_factory=dict)
    on_uncovered: Callable[[int], None] | None = None
    _told: set[int] = field(default_factory=set, repr=False)

    def add_year(self, year: CalendarYear) -> None:
        self.years[year.year] = year

    def covers(self, year: int) -> bool:
        return year in self.years

    def is_working(self, day: date) -> bool:
        schedule = self.years.get(day.year)
        if schedule is not None:
            return schedule.is_working(day)
        if day.year not in self._told:
            self._told.add(day.year)
            if self.on_uncovered is not None:
                self.on_uncovered(day.year)
        return day.weekday() < 5

    def _midnight(self, day: date) -> datetime:
        return datetime.combine(day, time(0), self.tz)

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest moment by which `duration` of working time has passed since `start` (a start on a
        rest day waits for the next working day)."""
        at, left = start, duration
        while True:
            day = at.astimezone(self.tz).date()
            day_end = self._midnight(day + DAY)
            if self.is_working(day):
                if left <= day_end - at:
                    return at + left
                left -= day_end - at
            at = day_end

    def rest_spans(self, start: datetime, end: datetime) -> list[RestSpan]:
        """The non-working days from `start`'s day to `end`'s, consecutive ones merged, as instants."""
        spans: list[RestSpan] = []
        day, last = start.astimezone(self.tz).date(), end.astimezone(self.tz).date()
        while day <= last:
            if not self.is_working(day):
                begin, stop = self._midnight(day), self._midnight(day + DAY)
                if spans and spans[-1][1] == begin:
                    spans[-1] = (spans[-1][0], stop)
                else:
                    spans.append((begin, stop))
            day += DAY
        return spans

    def uncovered(self, start: datetime, end: datetime) -> list[int]:
        """The years between two moments this calendar does not hold (counted weekdays only)."""
        first, last = start.astimezone(self.tz).year, end.astimezone(self.tz).year
        return [y for y in range(first, last + 1) if y not in self.years]


# ---------------------------------------------------------------- working time over stored rest spans
# A target keeps the rest spans of its own window (`clocks.TargetState.rest`), so its deadline can be
# shifted by a pause without the calendar at hand; beyond the spans every moment is working time.


def working_between(start: datetime, end: datetime, rest: Iterable[RestSpan]) -> timedelta:
    """Working time in [start, end)."""
    if end <= start:
        return timedelta(0)
    total = end - start
    for r_start, r_end in rest:
        overlap = min(end, r_end) - max(start, r_start)
        if overlap > timedelta(0):
            total -= overlap
    return total


def add_working(at: datetime, duration: timedelta, rest: Iterable[RestSpan]) -> datetime:
    """The earliest moment `duration` of working time after `at`."""
    left = duration
    for r_start, r_end in sorted(rest):
        if r_end <= at:
            continue
        if r_start <= at:
            at = r_end
            continue
        if left <= r_start - at:
            return at + left
        left -= r_start - at
        at = r_end
    return at + left


def sub_working(at: datetime, duration: timedelta, rest: Iterable[RestSpan]) -> datetime:
    """The latest moment `duration` of working time before `at`."""
    left = duration
    for r_start, r_end in sorted(rest, reverse=True):
        if r_start >= at:
            continue
        if r_end >= at:
            at = r_start
            continue
        if left <= at - r_end:
            return at - left
        left -= at - r_end
        at = r_start
    return at - left
