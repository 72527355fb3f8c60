"""Department and district codes, loaded from the CSV data shipped beside this module."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True, slots=True)
class Department:
    code: str
    name_zh: str
    name_en: str
    policy: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class District:
    code: str
    name_zh: str
    name_en: str
    kind: str  # district | county | autonomous_county | zone


def _rows(name: str) -> list[dict[str, str]]:
    text = resources.files("contracts.data").joinpath(name).read_text(encoding="utf-8")
    return list(csv.DictReader(text.splitlines()))


@cache
def departments() -> dict[str, Department]:
    """Every department the notice names or implies, by code."""
    return {
        r["code"]: Department(r["code"], r["name_zh"], r["name_en"], tuple(r["policy"].split()))
        for r in _rows("departments.csv")
    }


@cache
def districts() -> dict[str, District]:
    """Chongqing's 38 districts and counties plus the three administrative zones, by code."""
    return {r["code"]: District(r["code"], r["name_zh"], r["name_en"], r["kind"]) for r in _rows("districts.csv")}


def is_department(code: str) -> bool:
    return code in departments()


def is_district(code: str) -> bool:
    return code in districts()
