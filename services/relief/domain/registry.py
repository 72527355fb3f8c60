"""The low-income population database (P2.3): CSV import with a validation report.

Every row is checked on its own; good rows are kept, each bad row is named (line, recipient id, field,
reason in Chinese and English). ID-card numbers are never stored in clear: a salted hash (for matching a
caller) and a masked form (for people) are kept instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from contracts.codes import is_district
from services.relief.domain.csvrows import UNREADABLE_EN, UNREADABLE_ZH, csv_rows
from services.relief.domain.facts import Category
from services.relief.domain.standards import Area

REQUIRED_COLUMNS = ("recipient_id", "name", "id_card", "district", "area", "categories", "approved_on")
# members: the household's size, when known; hospitalised: how many of its members are in hospital now
# (a rise is a proactive-discovery finding, P2.3)
OPTIONAL_COLUMNS = ("ended_on", "members", "hospitalised")
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_card_checksum_ok(value: str) -> bool:
    """GB 11643-1999: 17 digits and a check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(value[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == value[17].upper()


def id_card_check_char(first17: str) -> str:
    return _ID_CHECK[sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True)) % 11]


def hash_id_card(id_card: str, salt: str) -> str:
    return hashlib.sha256(f"{salt}:{id_card.strip().upper()}".encode()).hexdigest()


@dataclass(frozen=True)
class RegistryRow:
    recipient_id: str
    name: str
    id_card_hash: str
    id_card_masked: str
    district: str
    area: Area
    categories: frozenset[Category]
    approved_on: date
    ended_on: date | None = None
    members: int | None = None
    hospitalised: int | None = None

    def document(self) -> dict[str, Any]:
        return {
            "_id": self.recipient_id,
            "name": self.name,
            "id_card_hash": self.id_card_hash,
            "id_card_masked": self.id_card_masked,
            "district": self.district,
            "area": str(self.area),
            "categories": sorted(str(c) for c in self.categories),
            "approved_on": self.approved_on.isoformat(),
            "ended_on": self.ended_on.isoformat() if self.ended_on else None,
        } | (
            ({"members": self.members} if self.members is not None else {})
            | ({"hospitalised": self.hospitalised} if self.hospitalised is not None else {})
        )


@dataclass
class ImportReport:
    rows: int = 0
    accepted: list[RegistryRow] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    lines: dict[str, int] = field(default_factory=dict)  # recipient id -> CSV line of an accepted row

    def summary(self) -> dict[str, Any]:
        return {"rows": self.rows, "accepted": len(self.accepted), "rejected": self.rejected}


def _err(column: str, zh: str, en: str) -> dict[str, str]:
    return {"field": column, "reason_zh": zh, "reason_en": en}


def _date(raw: str, column: str, errors: list[dict[str, str]]) -> date | None:
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        errors.append(_err(column, "日期格式应为 YYYY-MM-DD", "a date is written YYYY-MM-DD"))
        return None


def mask_id_card(id_card: str) -> str:
    """500103198001011238 -> 500103********1238: the district of issue and the last four characters."""
    v = id_card.strip().upper()
    return f"{v[:6]}{'*' * 8}{v[-4:]}" if len(v) == 18 else "*" * len(v)


def parse_row(raw: dict[str, str | None], salt: str) -> tuple[RegistryRow | None, list[dict[str, str]]]:
    """One CSV row into a registry row, or the list of what is wrong with it."""
    values = {k: (raw.get(k) or "").strip() for k in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)}
    errors = [_err(c, "必填项缺失", "required value missing") for c in REQUIRED_COLUMNS if not values[c]]
    if errors:
        return None, errors
    id_card = values["id_card"].upper()
    if not id_card_checksum_ok(id_card):
        errors.append(
            _err("id_card", "身份证号码格式或校验位不正确", "ID-card number malformed or its check digit is wrong")
        )
    if not is_district(values["district"]):
        errors.append(
            _err("district", f"未知的区县代码 {values['district']}", f"unknown district code {values['district']}")
        )
    if values["area"] not in {a.value for a in Area}:
        errors.append(_err("area", "城乡类别应为 urban 或 rural", "area must be urban or rural"))
    categories: set[Category] = set()
    for c in values["categories"].replace(";", " ").replace(",", " ").split():
        try:
            categories.add(Category(c))
        except ValueError:
            errors.append(_err("categories", f"未知的类别 {c}", f"unknown category {c}"))
    approved_on = _date(values["approved_on"], "approved_on", errors)
    ended_on = _date(values["ended_on"], "ended_on", errors) if values["ended_on"] else None
    if approved_on and ended_on and ended_on < approved_on:
        errors.append(_err("ended_on", "终止日期早于认定日期", "ended_on is before approved_on"))
    members: int | None = None
    if values["members"]:
        if values["members"].isdigit() and 1 <= int(values["members"]) <= 50:
            members = int(values["members"])
        else:
            errors.append(_err("members", "家庭人口应为 1 至 50 的整数", "members is a whole number from 1 to 50"))
    hospitalised: int | None = None
    if values["hospitalised"]:
        if values["hospitalised"].isdigit() and int(values["hospitalised"]) <= 50:
            hospitalised = int(values["hospitalised"])
        else:
            errors.append(
                _err("hospitalised", "住院人数应为 0 至 50 的整数", "hospitalised is a whole number from 0 to 50")
            )
    if errors or approved_on is None:
        return None, errors
    return RegistryRow(
        values["recipient_id"],
        values["name"],
        hash_id_card(id_card, salt),
        mask_id_card(id_card),
        values["district"],
        Area(values["area"]),
        frozenset(categories),
        approved_on,
        ended_on,
        members,
        hospitalised,
    ), []


def parse_registry_csv(text: str, salt: str) -> ImportReport:
    """Validate a registry CSV; raises ValueError only when the header itself is unusable. A row the csv
    module cannot read is rejected with its line, like a row with bad values."""
    rows = csv_rows(text.lstrip("\ufeff"))
    header = next(rows, None)
    fieldnames = [c.strip() for c in header.cells] if header is not None and header.cells is not None else []
    missing = [c for c in REQUIRED_COLUMNS if c not in fieldnames]
    if missing:
        raise ValueError(f"缺少列：{', '.join(missing)} | missing columns: {', '.join(missing)}")
    report = ImportReport()
    first_line: dict[str, int] = {}
    for read in rows:
        report.rows += 1
        line = read.line
        if read.cells is None:
            reason = [_err("line", f"{UNREADABLE_ZH}（{read.error}）", f"{UNREADABLE_EN} ({read.error})")]
            report.rejected.append({"line": line, "recipient_id": None, "errors": reason})
            continue
        raw: dict[str, str | None] = dict(zip(fieldnames, read.cells, strict=False))
        row, errors = parse_row(raw, salt)
        rid = (raw.get("recipient_id") or "").strip()
        if row is not None and rid in first_line:
            row, errors = (
                None,
                [_err("recipient_id", f"与第{first_line[rid]}行重复", f"duplicate of line {first_line[rid]}")],
            )
        if row is None:
            report.rejected.append({"line": line, "recipient_id": rid or None, "errors": errors})
            continue
        first_line[rid] = line
        report.lines[rid] = line
        report.accepted.append(row)
    return report
