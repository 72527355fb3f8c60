"""Files for and from the bank: the payment file written as CSV (UTF-8 with a BOM, so Excel opens Chinese
names right) or Excel (openpyxl, every cell text: an ID-card number must not become a number), and the
bank's return file read from either (a CSV may also come in GB18030, as many Chinese banks write it).
The rows' meaning is the pure domain's (`services.relief.domain.payfile`)."""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal

from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped]

from common.errors import DomainError
from services.relief.domain.csvrows import CsvRow, csv_rows
from services.relief.domain.payfile import EXPORT_COLUMNS, ExportRow

MAX_BYTES = 5 * 1024 * 1024
MAX_ROWS = 20_000
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def payment_csv(rows: Sequence[ExportRow], district_name: Callable[[str], str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    for row in rows:
        writer.writerow(row.values(district_name(row.district)))
    return ("\ufeff" + out.getvalue()).encode("utf-8")


def payment_xlsx(rows: Sequence[ExportRow], district_name: Callable[[str], str]) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "payments"
    sheet.append(list(EXPORT_COLUMNS))
    for row in rows:
        sheet.append(row.values(district_name(row.district)))
    for line in sheet.iter_rows(min_row=2):
        for cell in line:
            cell.number_format = "@"  # text: 18-digit ID-card numbers and amounts stay exactly as written
    for column, width in zip("ABCDEFGHI", (34, 12, 22, 12, 9, 12, 22, 8, 9), strict=True):
        sheet.column_dimensions[column].width = width
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def read_table(content: bytes) -> list[CsvRow]:
    """The rows of an uploaded return file (xlsx: its first sheet; otherwise CSV), every cell as text, each
    with its line; a CSV row the csv module cannot read comes without cells, with the reason."""
    if len(content) > MAX_BYTES:
        raise _bad("文件过大（上限 5 MB）", "the file is too large (at most 5 MB)")
    if not content.strip():
        raise _bad("文件为空", "the file is empty")
    if content[:2] == b"PK":
        rows = [CsvRow(n, r) for n, r in enumerate(_xlsx_rows(content), start=1) if any(c.strip() for c in r)]
    else:
        rows = list(csv_rows(_csv_text(content)))
    if len(rows) > MAX_ROWS + 1:
        raise _bad(f"行数过多（上限 {MAX_ROWS} 行）", f"too many rows (at most {MAX_ROWS})")
    return rows


def _csv_text(content: bytes) -> str:
    try:
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            return content.decode("gb18030")
        except UnicodeDecodeError as exc:
            raise _bad(
                "文件须为 CSV（UTF-8 或 GB18030）或 Excel", "the file must be CSV (UTF-8 or GB18030) or xlsx"
            ) from exc


def _xlsx_rows(content: bytes) -> list[list[str]]:
    try:
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _bad("Excel 文件无法读取", "the Excel file cannot be read") from exc
    try:
        sheet = book.worksheets[0]
        return [[_text(v) for v in row] for row in sheet.iter_rows(values_only=True)]
    finally:
        book.close()


def _text(value: object) -> str:
    """A cell as the bank meant it: 1240.5 -> "1240.5" (through its shortest repr, not binary noise)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return str(Decimal(repr(value)))
    return str(value).strip()


def _bad(zh: str, en: str) -> DomainError:
    return DomainError(zh, en, field="file", status=422)
