"""The plain facts the rules read: what the caller said (the help request), where the router sent the
case (the dispatch), and what the low-income population database holds about the person."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any

from services.relief.domain.standards import Area


class Category(StrEnum):
    """Registry categories of the low-income population database (P2.3) and subsidy groups (P1.3, P2.1)."""

    DIBAO = "dibao"  # 低保
    TEKUN = "tekun"  # 特困
    LOW_INCOME = "low_income"  # 低收入家庭
    EDGE = "edge"  # 边缘户
    YOUFU = "youfu"  # 优抚 entitled groups with regular state pensions (P1.3)
    UNEMPLOYMENT_BENEFIT = "unemployment_benefit"  # 领取失业保险金/失业补助金 (P1.3)
    ORPHAN = "orphan"  # 孤儿 (P2.1)
    UNSUPPORTED_CHILD = "unsupported_child"  # 事实无人抚养儿童 (P2.1)


@dataclass(frozen=True)
class RegistryMatch:
    """The registry's record of the person, if the ID-card number matched one."""

    recipient_id: str
    categories: frozenset[Category]
    district: str
    area: Area
    active: bool = True


@dataclass(frozen=True)
class CaseFacts:
    """Everything a case rule may look at, and nothing else (so every decision can cite its facts)."""

    case_id: str
    needs: tuple[str, ...]
    place_district: str  # where the hardship happened: the paying district (P5.2d)
    reported_on: date
    household_status: str = "unknown"  # contracts.events.hotline.HouseholdStatus value
    special_groups: frozenset[str] = frozenset()
    months_without_income: int | None = None
    hukou_district: str | None = None
    registry: RegistryMatch | None = None
    # The intake's typed answers (contracts/data/services.yaml attributes, by code), as the hotline sent them.
    answers: Mapping[str, str | float | list[str]] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def as_record(self) -> dict[str, Any]:
        """The facts as a JSON-able record, stored with every decision (P6.3); no personal numbers."""
        record: dict[str, Any] = {
            "needs": list(self.needs),
            "place_district": self.place_district,
            "reported_on": self.reported_on.isoformat(),
            "household_status": self.household_status,
            "special_groups": sorted(self.special_groups),
            "months_without_income": self.months_without_income,
            "hukou_district": self.hukou_district,
            "answers": {code: self.answers[code] for code in sorted(self.answers)},
            "registry": None,
        }
        if self.registry is not None:
            record["registry"] = {
                "recipient_id": self.registry.recipient_id,
                "categories": sorted(self.registry.categories),
                "district": self.registry.district,
                "area": str(self.registry.area),
                "active": self.registry.active,
            }
        return record | self.extra

    def answer(self, code: str) -> str | None:
        """A single-valued answer of the intake (`yes`, `no`, a district code, ...), or None if not asked."""
        value = self.answers.get(code)
        if value is None or isinstance(value, list) or value == "":
            return None
        return str(value)

    def registry_has(self, *categories: Category) -> bool:
        return self.registry is not None and self.registry.active and bool(self.registry.categories & set(categories))
