"""The parameters of the notice's relief rules (P5.1, P5.2a–c) as dated, versioned data.

The notice fixes multipliers, periods and groups; a deployer fixes local practice (the four-eyes threshold).
Both change over time, so they are data with an `effective_from` date (like the dibao standards), validated
when the service starts, and every proposal and decision cites the set it used (`RuleParameters.cite`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.catalogue import service_codes
from contracts.events.hotline import SpecialGroup
from services.relief.domain.facts import Category
from services.relief.domain.money import has_at_most_two_places

PROVISION = re.compile(r"^P\d\.\d[a-z]?$")
Multiplier = Annotated[Decimal, Field(gt=0, le=10)]
RULE_IDS = ("P5.1", "P5.2a", "P5.2b", "P5.2c")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class P52aParameters(_Strict):
    """P5.2a: confirmed patients of these groups get `multiplier` x the local standard, monthly."""

    multiplier: Multiplier
    household_categories: tuple[Category, ...] = Field(min_length=1)
    child_groups: tuple[SpecialGroup, ...] = ()


class P52bParameters(_Strict):
    """P5.2b: a one-time grant of at most `multiplier` x the `standard_area` standard of the residence, after
    `months_without_income` consecutive months without income, not for the `excluded_categories`."""

    multiplier: Multiplier
    months_without_income: int = Field(ge=1, le=24)
    standard_area: Literal["urban", "rural"] = "urban"
    excluded_categories: tuple[Category, ...] = (Category.DIBAO, Category.UNEMPLOYMENT_BENEFIT)


class P52cParameters(_Strict):
    """P5.2c: case by case; an amount above `four_eyes_above_yuan` needs a second officer."""

    four_eyes_above_yuan: Annotated[Decimal, Field(ge=0, le=1_000_000)]

    @field_validator("four_eyes_above_yuan")
    @classmethod
    def _fen(cls, value: Decimal) -> Decimal:
        if not has_at_most_two_places(value):
            raise ValueError("金额最多两位小数 | an amount has at most two decimal places")
        return value


class P51Parameters(_Strict):
    """P5.1: the review steps of each path, and the special groups shown as hints of an epidemic income fall
    when the caller was not asked (the officer verifies; hints alone never fast-track)."""

    fast_steps: tuple[str, ...] = Field(min_length=1)
    standard_steps: tuple[str, ...] = Field(min_length=1)
    topup_steps: tuple[str, ...] = Field(min_length=1)
    epidemic_hints: tuple[SpecialGroup, ...] = ()

    @model_validator(mode="after")
    def _appraisal(self) -> P51Parameters:
        if "public_appraisal" in self.fast_steps:
            raise ValueError("p51.fast_steps: the fast path has no public appraisal (P5.1)")
        if "public_appraisal" not in self.standard_steps:
            raise ValueError("p51.standard_steps: the standard review includes the public appraisal")
        return self


class RuleParameters(_Strict):
    """One set of parameters, in force from `effective_from` until a later set takes over."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9.\-]{0,39}$")
    version: int = Field(ge=1)
    effective_from: date
    source: str = ""
    p51: P51Parameters
    p52a: P52aParameters
    p52b: P52bParameters
    p52c: P52cParameters

    @property
    def cite(self) -> str:
        """How a decision cites the set: `id@vN`."""
        return f"{self.id}@v{self.version}"


class RuleEntry(_Strict):
    """A relief rule: the need it answers and the provisions it implements (the provision table reads these)."""

    id: str
    need: str
    provisions: tuple[str, ...] = Field(min_length=1)

    @field_validator("provisions")
    @classmethod
    def _provisions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if bad := [p for p in value if not PROVISION.match(p)]:
            raise ValueError(f"provision ids must look like P5.2a: {bad}")
        return value


class RulesFile(_Strict):
    version: int = 1
    note: str = ""
    rules: tuple[RuleEntry, ...] = Field(min_length=1)
    parameter_sets: tuple[RuleParameters, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> RulesFile:
        ids = [r.id for r in self.rules]
        if sorted(ids) != sorted(RULE_IDS):
            raise ValueError(f"rules: exactly the rules {', '.join(RULE_IDS)} are needed, got {', '.join(ids)}")
        if unknown := [r.need for r in self.rules if r.need not in service_codes()]:
            raise ValueError(f"rules: unknown service codes {unknown} (see contracts/data/services.yaml)")
        _no_duplicates(self.parameter_sets)
        return self


def _no_duplicates(sets: Iterable[RuleParameters]) -> None:
    dates: set[date] = set()
    cites: set[str] = set()
    for s in sets:
        if s.effective_from in dates:
            raise ValueError(f"parameter_sets: two sets take effect on {s.effective_from}")
        if s.cite in cites:
            raise ValueError(f"parameter_sets: {s.cite} appears twice")
        dates.add(s.effective_from)
        cites.add(s.cite)


class NoParameters(LookupError):
    """No parameter set is in force on the day: a deployer must add one."""


class RulesBook:
    """All parameter sets, looked up by date: the latest `effective_from` on or before the day."""

    def __init__(self, sets: Iterable[RuleParameters], rules: Iterable[RuleEntry] = ()) -> None:
        self._sets = sorted(sets, key=lambda s: s.effective_from)
        self.rules = tuple(rules)

    def in_force(self, on: date) -> RuleParameters:
        current = None
        for s in self._sets:
            if s.effective_from <= on:
                current = s
            else:
                break
        if current is None:
            raise NoParameters(f"no relief rule parameters in force on {on.isoformat()}")
        return current

    def with_added(self, extra: Iterable[RuleParameters]) -> RulesBook:
        """A book with admin-added sets; an added one replaces a shipped one of the same date."""
        merged = {s.effective_from: s for s in self._sets}
        merged.update({s.effective_from: s for s in extra})
        return RulesBook(merged.values(), self.rules)

    def all(self) -> list[RuleParameters]:
        return list(self._sets)


def load_rules(text: str) -> tuple[RulesFile, RulesBook]:
    """Parse and validate the rules file; raises ValueError naming what is wrong (start-up fails)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ValueError(f"relief rules: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("relief rules: the file must be a mapping with `rules` and `parameter_sets`")
    try:
        parsed = RulesFile.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc']))}: {str(e['msg']).removeprefix('Value error, ')}" for e in exc.errors()
        )
        raise ValueError(f"relief rules invalid: {problems}") from None
    return parsed, RulesBook(parsed.parameter_sets, parsed.rules)


@cache
def packaged_rules() -> RulesBook:
    """The rules file shipped in `services/relief/data/relief_rules.yaml`, validated."""
    text = resources.files("services.relief.data").joinpath("relief_rules.yaml").read_text(encoding="utf-8")
    return load_rules(text)[1]
