"""Reports over time (P6.2 三率): volumes received, dispatched and resolved, and the response, on-time
resolution and satisfaction rates, per day, week or month and per district or department; exported as
CSV or XLSX with the same columns.

The store sums each counter per local day and group (`store.report_counts`); here the days are rolled
up into weeks (ISO, Monday first) or months. The rates follow the live rates' definitions (`views.rates`):
a sign-for or a resolution counts in the period it was decided (met on time, or its deadline passed).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any, Literal

from openpyxl import Workbook  # type: ignore[import-untyped]

from services.notify.schemas import Report, ReportRow
from services.notify.store import GroupBy, NotifyStore, Origin

Period = Literal["day", "week", "month"]
COUNTERS = (
    "received",
    "dispatched",
    "resolved",
    "sign_on_time",
    "sign_decided",
    "res_on_time",
    "res_decided",
    "satisfied",
    "callbacks",
)
# Columns of the exports, Chinese first with English.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("period", "时段 Period"),
    ("group", "区县/部门 District/Department"),
    ("received", "受理量 Received"),
    ("dispatched", "派单量 Dispatched"),
    ("resolved", "办结量 Resolved"),
    ("response_rate", "按时签收率 Response rate"),
    ("on_time_resolution_rate", "按时办结率 On-time resolution rate"),
    ("satisfaction_rate", "满意率 Satisfaction rate"),
    ("sign_on_time", "按时签收数 Signed on time"),
    ("sign_decided", "应签收数 Sign-for decided"),
    ("res_on_time", "按时办结数 Resolved on time"),
    ("res_decided", "应办结数 Resolution decided"),
    ("satisfied", "满意数 Satisfied"),
    ("callbacks", "回访数 Callbacks"),
)


def period_of(day: date, by: Period) -> tuple[str, date]:
    """The period a day falls in: its label and its first day."""
    if by == "day":
        return day.isoformat(), day
    if by == "week":
        year, week, weekday = day.isocalendar()
        return f"{year}-W{week:02d}", day - timedelta(days=weekday - 1)
    return f"{day:%Y-%m}", day.replace(day=1)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _row(period: str, start: date, group: str | None, c: dict[str, int]) -> ReportRow:
    return ReportRow(
        period=period,
        period_start=start,
        group=group,
        response_rate=_rate(c["sign_on_time"], c["sign_decided"]),
        on_time_resolution_rate=_rate(c["res_on_time"], c["res_decided"]),
        satisfaction_rate=_rate(c["satisfied"], c["callbacks"]),
        **{name: c[name] for name in COUNTERS},
    )


async def report(
    store: NotifyStore,
    first: date,
    last: date,
    now: datetime,
    *,
    by: Period,
    group: GroupBy,
    district: str | None,
    origin: Origin | None = None,
) -> Report:
    raw = await store.report_counts(
        first.isoformat(), last.isoformat(), now, group=group, district=district, origin=origin
    )
    # Decided = met (on time or late) plus still open past the deadline, as in the live rates.
    merged: dict[str, dict[tuple[str, Any], int]] = {
        "sign_decided": _add(raw["sign_decided"], raw["sign_overdue"]),
        "res_decided": _add(raw["res_decided"], raw["res_overdue"]),
        **{name: raw[name] for name in COUNTERS if name not in ("sign_decided", "res_decided")},
    }
    cells: dict[tuple[str, date, str | None], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    totals: dict[tuple[str, date], dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
    for name, table in merged.items():
        for (day_text, name_of_group), n in table.items():
            if not n:
                continue
            label, start = period_of(date.fromisoformat(day_text), by)
            cells[(label, start, name_of_group)][name] += n
            totals[(label, start)][name] += n
    rows = [_row(p, s, g, c) for (p, s, g), c in cells.items()]
    rows.sort(key=lambda r: (r.period_start, r.group is None, r.group or ""))
    total_rows = [_row(p, s, None, c) for (p, s), c in sorted(totals.items(), key=lambda kv: kv[0][1])]
    return Report(
        first=first, last=last, by=by, group=group, district=district, origin=origin, rows=rows, totals=total_rows
    )


def _add(a: dict[tuple[str, Any], int], b: dict[tuple[str, Any], int]) -> dict[tuple[str, Any], int]:
    out = dict(a)
    for key, n in b.items():
        out[key] = out.get(key, 0) + n
    return out


def _cells(row: ReportRow) -> list[Any]:
    values = row.model_dump()
    return [
        "（未派单）not dispatched" if name == "group" and values[name] is None else values[name] for name, _ in COLUMNS
    ]


def to_csv(result: Report) -> str:
    """The report's rows as CSV (UTF-8 with a byte-order mark, so spreadsheet programs read the Chinese)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow([title for _, title in COLUMNS])
    for row in result.rows:
        writer.writerow(_cells(row))
    return out.getvalue()


def to_xlsx(result: Report) -> bytes:
    """The report as a workbook: the rows per group, and the totals per period."""
    book = Workbook()
    sheet = book.active
    assert sheet is not None  # a new workbook has its first sheet
    sheet.title = "报表 Report"
    sheet.append([title for _, title in COLUMNS])
    for row in result.rows:
        sheet.append(_cells(row))
    totals = book.create_sheet("合计 Totals")
    totals.append([title for name, title in COLUMNS if name != "group"])
    for row in result.totals:
        totals.append([c for (name, _), c in zip(COLUMNS, _cells(row), strict=True) if name != "group"])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
