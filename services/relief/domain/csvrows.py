"""Reading an uploaded CSV row by row, so that one row the csv module cannot read (a field over its size
limit, say) is reported as that row's error and the other rows are still read. Line breaks are read the
way the csv module wants them (`newline=""`): a bare CR ends a row as CRLF and LF do, inside quotes it
stays part of the field."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

UNREADABLE_ZH = "此行无法按 CSV 读取"
UNREADABLE_EN = "this line cannot be read as CSV"


@dataclass(frozen=True)
class CsvRow:
    line: int  # the file's line where the row ends (as csv's `line_num` counts)
    cells: list[str] | None  # None: the row could not be read; `error` says why
    error: str = ""


def csv_rows(text: str) -> Iterator[CsvRow]:
    """Every row of `text`, blank rows skipped; an unreadable row comes as `cells=None` with the reason."""
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield CsvRow(reader.line_num, None, str(exc))
            continue
        if any(c.strip() for c in cells):
            yield CsvRow(reader.line_num, cells)
