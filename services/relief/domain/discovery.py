"""Proactive discovery (P2.3 主动发现, 未诉先办): rules as data that find people who may need help before
they call, from changes in the low-income population database and from the care register. Each finding
becomes an `OutreachProposed` event, which the hotline files as a proactive case (the one door that
issues case numbers). Pure: snapshots and rules in, findings out.

A finding's `proposal_id` is natural (rule, household, day or due visit), so looking again at the same
change proposes nothing new.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.catalogue import NeedCodes
from contracts.events.care import OutreachProposed
from contracts.events.hotline import HouseholdStatus, Place, SpecialGroup
from contracts.provisions import ProvisionIds


class Trigger(StrEnum):
    CATEGORY_DROPPED = "category_dropped"  # a registry category left the record, or the record ended
    CATEGORY_ADDED = "category_added"  # newly in a category (approved within `within_days`)
    MEMBER_HOSPITALISED = "member_hospitalised"  # more of the household's members in hospital than before
    VISIT_OVERDUE = "visit_overdue"  # a care visit still not made `after_days` after its due day
    VISIT_NEEDS_FOUND = "visit_needs_found"  # a care visit found needs: they are the case's needs


class DiscoveryRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=r"^D-P\d\.\d[a-z]?-[A-Z0-9-]+$")
    provisions: ProvisionIds
    trigger: Trigger
    categories: tuple[str, ...] = ()  # the registry categories a category trigger watches
    within_days: int = Field(default=31, ge=0)  # category_added: approved at most this long ago
    after_days: int = Field(default=0, ge=0)  # visit_overdue: days past the due day
    needs: NeedCodes = ()  # catalogue need codes of the case (visit_needs_found: the visit's)
    effective_from: date
    effective_to: date | None = None
    description_zh: str = Field(min_length=1)
    description_en: str = Field(min_length=1)

    @model_validator(mode="after")
    def _shape(self) -> DiscoveryRule:
        category = self.trigger in (Trigger.CATEGORY_DROPPED, Trigger.CATEGORY_ADDED)
        if category and not self.categories:
            raise ValueError(f"{self.id}: 类别规则须列出类别 | a category rule names its categories")
        if self.trigger is not Trigger.VISIT_NEEDS_FOUND and not self.needs:
            raise ValueError(f"{self.id}: 须列出需求 | the rule names the needs of the case it opens")
        return self

    def in_force(self, on: date) -> bool:
        return self.effective_from <= on and (self.effective_to is None or on < self.effective_to)


class DiscoveryRules(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    rules: tuple[DiscoveryRule, ...]

    @model_validator(mode="after")
    def _unique(self) -> DiscoveryRules:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("规则编号重复 | rule ids must be unique")
        return self

    def of(self, trigger: Trigger, on: date) -> list[DiscoveryRule]:
        return [r for r in self.rules if r.trigger is trigger and r.in_force(on)]


def load_discovery_rules(text: str) -> DiscoveryRules:
    """Parse and validate the discovery rules (raises: the service does not start on a bad file)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("the discovery rules are a mapping with `version` and `rules`")
    return DiscoveryRules.model_validate(data)


# ---------------------------------------------------------------------------- findings


@dataclass(frozen=True)
class Household:
    """What the registry holds about a household, as a discovery rule reads it."""

    recipient_id: str
    name: str
    district: str
    categories: frozenset[str]
    approved_on: date
    ended_on: date | None = None
    hospitalised: int = 0  # members in hospital now (the registry file's optional column)

    def active(self, on: date) -> frozenset[str]:
        return frozenset() if self.ended_on is not None and self.ended_on <= on else self.categories


@dataclass(frozen=True)
class Finding:
    rule: DiscoveryRule
    proposal_id: str
    household: str
    reason_zh: str
    reason_en: str


def registry_findings(before: Household | None, after: Household, rules: DiscoveryRules, on: date) -> list[Finding]:
    """What changed in one household's registry record that a rule watches (P2.3)."""
    found: list[Finding] = []
    was = before.active(on) if before is not None else frozenset()
    now = after.active(on)
    for rule in rules.of(Trigger.CATEGORY_DROPPED, on):
        dropped = sorted((was - now) & set(rule.categories))
        if dropped:
            found.append(_finding(rule, after.recipient_id, on, f"退出：{'、'.join(dropped)}", f"left: {dropped}"))
    for rule in rules.of(Trigger.CATEGORY_ADDED, on):
        added = sorted((now - was) & set(rule.categories))
        if added and after.approved_on >= on - timedelta(days=rule.within_days):
            found.append(_finding(rule, after.recipient_id, on, f"新认定：{'、'.join(added)}", f"new: {added}"))
    for rule in rules.of(Trigger.MEMBER_HOSPITALISED, on):
        if after.hospitalised > (before.hospitalised if before is not None else 0):
            found.append(
                _finding(rule, after.recipient_id, on, f"住院人数 {after.hospitalised}", "a member is in hospital")
            )
    return found


def overdue_findings(entry_id: str, due_on: date, rules: DiscoveryRules, today: date) -> list[Finding]:
    """A care visit due on `due_on` and still not made: the visit_overdue rules whose delay has passed."""
    return [
        Finding(
            rule,
            f"{rule.id}|{entry_id}|{due_on.isoformat()}",
            entry_id,
            f"应于{due_on.isoformat()}探访，逾期未探访",
            f"visit due {due_on.isoformat()} not made",
        )
        for rule in rules.of(Trigger.VISIT_OVERDUE, today)
        if today > due_on + timedelta(days=rule.after_days)
    ]


def overdue_checks(due_on: date, rules: DiscoveryRules, on: date) -> list[tuple[str, date]]:
    """When each visit_overdue rule looks at a missed visit: (rule id, the day after its delay)."""
    return [(r.id, due_on + timedelta(days=r.after_days + 1)) for r in rules.of(Trigger.VISIT_OVERDUE, on)]


def needs_found(entry_id: str, visit_id: str, rules: DiscoveryRules, on: date) -> list[Finding]:
    return [
        Finding(rule, f"{rule.id}|{visit_id}", entry_id, "探访发现需求", "needs found on a visit")
        for rule in rules.of(Trigger.VISIT_NEEDS_FOUND, on)
    ]


def _finding(rule: DiscoveryRule, household: str, on: date, zh: str, en: str) -> Finding:
    return Finding(rule, f"{rule.id}|{household}|{on.isoformat()}", household, zh, en)


def household_status(categories: Iterable[str]) -> HouseholdStatus:
    """The household status a case shows, from registry categories (the strongest first)."""
    held = set(categories)
    for status in (HouseholdStatus.TEKUN, HouseholdStatus.DIBAO, HouseholdStatus.LOW_INCOME, HouseholdStatus.EDGE):
        if str(status) in held:
            return status
    return HouseholdStatus.NONE


def proposal(
    finding: Finding,
    *,
    name: str,
    place: Place,
    status: HouseholdStatus = HouseholdStatus.UNKNOWN,
    special_groups: Iterable[SpecialGroup] = (),
    needs: Iterable[str] = (),
    worker: str | None = None,
) -> OutreachProposed:
    """The event that asks the hotline to open the proactive case of a finding."""
    rule = finding.rule
    return OutreachProposed(
        case_id=finding.proposal_id,
        proposal_id=finding.proposal_id,
        rule_id=rule.id,
        provisions=rule.provisions,
        household=finding.household,
        name=name,
        place=place,
        needs=tuple(needs) or rule.needs,
        household_status=status,
        special_groups=tuple(special_groups),
        description=f"【主动发现 {rule.id}】{rule.description_zh}（{finding.reason_zh}） | "
        f"[Proactive {rule.id}] {rule.description_en} ({finding.reason_en})",
        worker=worker,
    )
