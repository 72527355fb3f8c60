"""Dibao standards as dated data (yuan per person per month, by district, urban and rural).

The notice fixes multipliers, not yuan: each district's standard changes over time, so standards are
data with an `effective_from` date, validated when the service starts (STYLE.md 9), never constants.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.codes import districts, is_district
from services.relief.domain.money import has_at_most_two_places


class Area(StrEnum):
    URBAN = "urban"
    RURAL = "rural"


Yuan = Annotated[Decimal, Field(gt=0, le=100_000)]


class DibaoStandard(BaseModel):
    """One district's urban and rural dibao standards from a date on."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    district: str
    effective_from: date
    urban: Yuan
    rural: Yuan
    source: str = ""  # e.g. the deployer's reference to the official notice

    @field_validator("district")
    @classmethod
    def _known_district(cls, value: str) -> str:
        if not is_district(value):
            raise ValueError(f"未知的区县代码 {value} | unknown district code {value}")
        return value

    @field_validator("urban", "rural")
    @classmethod
    def _fen(cls, value: Decimal) -> Decimal:
        if not has_at_most_two_places(value):
            raise ValueError("金额最多两位小数 | an amount has at most two decimal places")
        return value

    def for_area(self, area: Area | str) -> Decimal:
        return self.urban if Area(area) is Area.URBAN else self.rural


class StandardsFile(BaseModel):
    """The shipped YAML file: `example` says whether its figures are placeholders."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int = 1
    example: bool
    unit: str = "yuan per person per month"
    note: str = ""
    standards: tuple[DibaoStandard, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _no_duplicate_dates(self) -> StandardsFile:
        seen: set[tuple[str, date]] = set()
        for s in self.standards:
            if (s.district, s.effective_from) in seen:
                raise ValueError(f"duplicate standard for district {s.district} from {s.effective_from}")
            seen.add((s.district, s.effective_from))
        return self


class NoStandard(LookupError):
    """No standard is in force for the district on the date: a deployer must add one."""


class StandardsBook:
    """All standards, looked up by district and date: the latest `effective_from` on or before the date."""

    def __init__(self, standards: Iterable[DibaoStandard]) -> None:
        by_district: dict[str, list[DibaoStandard]] = defaultdict(list)
        for s in standards:
            by_district[s.district].append(s)
        self._by_district = {d: sorted(v, key=lambda s: s.effective_from) for d, v in by_district.items()}

    def standard(self, district: str, on: date) -> DibaoStandard:
        """The standard in force in `district` on `on`; raises NoStandard if none is."""
        current = None
        for s in self._by_district.get(district, ()):
            if s.effective_from <= on:
                current = s
            else:
                break
        if current is None:
            raise NoStandard(f"no dibao standard for district {district} on {on.isoformat()}")
        return current

    def amount(self, district: str, area: Area | str, on: date) -> Decimal:
        return self.standard(district, on).for_area(area)

    def with_added(self, extra: Iterable[DibaoStandard]) -> StandardsBook:
        """A book with admin-added standards; an added one replaces a shipped one of the same date."""
        merged = {(s.district, s.effective_from): s for d in self._by_district.values() for s in d}
        merged.update({(s.district, s.effective_from): s for s in extra})
        return StandardsBook(merged.values())

    def all(self) -> list[DibaoStandard]:
        return [s for d in sorted(self._by_district) for s in self._by_district[d]]

    def missing_districts(self) -> list[str]:
        return sorted(set(districts()) - set(self._by_district))


def load_standards(text: str, *, require_every_district: bool = True) -> tuple[StandardsFile, StandardsBook]:
    """Parse and validate the standards file; raises ValueError naming what is wrong (start-up fails)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("dibao standards: the file must be a mapping with a `standards` list")
    parsed = StandardsFile.model_validate(data)
    book = StandardsBook(parsed.standards)
    if require_every_district and (missing := book.missing_districts()):
        raise ValueError(f"dibao standards: no standard for districts {', '.join(missing)}")
    return parsed, book
