"""Repeated calls from one household (P2.3 主动发现, 未诉先办): the hotline's discovery rule, as data
(`data/discovery.yaml`). Pure: the case ids the repeat-caller index holds for the household, the rule,
the day; out comes the finding (its natural proposal id) or nothing."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field

from contracts.catalogue import NeedCodes
from contracts.provisions import ProvisionIds

CASE_DAY = re.compile(r"^CQ-(\d{8})-\d{6}$")


class RepeatRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^D-P\d\.\d[a-z]?-[A-Z0-9-]+$")
    provisions: ProvisionIds
    calls: int = Field(ge=2, le=100)
    within_days: int = Field(ge=1, le=366)
    needs: NeedCodes = Field(min_length=1)
    effective_from: date
    effective_to: date | None = None
    description_zh: str = Field(min_length=1)
    description_en: str = Field(min_length=1)

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on < self.effective_to)


class RepeatRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    rules: tuple[RepeatRule, ...] = ()


def load_repeat_rules(text: str) -> RepeatRules:
    rules = RepeatRules.model_validate(yaml.safe_load(text))
    ids = [r.id for r in rules.rules]
    if len(ids) != len(set(ids)):
        raise ValueError("discovery.yaml: duplicate rule ids")
    return rules


@cache
def repeat_rules() -> RepeatRules:
    """The rules shipped in `services/hotline/data/discovery.yaml`, validated at start-up."""
    text = resources.files("services.hotline.data").joinpath("discovery.yaml").read_text(encoding="utf-8")
    return load_repeat_rules(text)


@dataclass(frozen=True)
class Repeat:
    rule: RepeatRule
    proposal_id: str
    calls: int


def case_date(case_id: str) -> date | None:
    found = CASE_DAY.match(case_id)
    return datetime.strptime(found.group(1), "%Y%m%d").date() if found else None


def repeated_calls(household: str, earlier: Iterable[str], case_id: str, rules: RepeatRules, on: date) -> list[Repeat]:
    """The rules a call crosses: `calls` cases of the household within the rule's window, counting those
    numbered up to this call (case numbers sort by day and number), so reading the index after later calls
    were filed gives the same answer. The proposal id names the household's key (an opaque keyed hash)
    and the window."""
    found = []
    for rule in rules.rules:
        if not rule.in_force(on):
            continue
        since = on - timedelta(days=rule.within_days - 1)
        cases = {c for c in earlier if c <= case_id} | {case_id}
        days = {c: d for c in cases if (d := case_date(c)) is not None and since <= d <= on}
        if len(days) >= rule.calls:
            window = (on - date(1970, 1, 1)).days // rule.within_days
            found.append(Repeat(rule, f"{rule.id}|{household[:24]}|{window}", len(days)))
    return found
