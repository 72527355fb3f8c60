"""The routing decision: a pure function of the request's facts and the catalogue, explaining itself.

The district that acts is the place where the hardship happened (P5.2d), whatever the caller's
household registration. Nothing matched, or every candidate refused: civil affairs of that district
(兜底, P6.2). Every decision carries the rule ids and the facts it saw (P6.3).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from contracts.catalogue import service_catalogue
from contracts.events.hotline import HelpRequested, HouseholdStatus, SpecialGroup
from contracts.events.router import Assignment, Decision
from services.router.domain.catalogue import Conditions, DispatchCatalogue, Rule

PLACE_OF_HARDSHIP = "P5.2d"
ONE_DOOR = "P2.3"


class RoutingFacts(BaseModel):
    """What routing may look at: no names, phone or ID-card numbers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    district: str  # the place of hardship
    needs: tuple[str, ...]
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN
    special_groups: tuple[SpecialGroup, ...] = ()
    emergency: bool = False
    months_without_income: int | None = None
    received_at: AwareDatetime
    hukou_district: str | None = None  # recorded to show it did not decide (P5.2d)
    # The intake's single-value answers of the needs (e.g. subsidy_recipient_kind): coded, no free text.
    answers: dict[str, str] = Field(default_factory=dict)

    @classmethod
    def of(cls, request: HelpRequested) -> RoutingFacts:
        return cls(
            district=request.place.district,
            needs=request.needs,
            household_status=request.household_status,
            special_groups=request.special_groups,
            emergency=request.emergency or request.urgency == "emergency",
            months_without_income=request.months_without_income,
            received_at=request.received_at,
            hukou_district=request.caller.hukou_district,
            answers=coded_answers(request.needs, request.attributes),
        )


def coded_answers(needs: Sequence[str], attributes: Mapping[str, object]) -> dict[str, str]:
    """The answers routing may read: single-value list attributes of the needs (codes, never free text)."""
    catalogue = service_catalogue()
    known = catalogue.by_code()
    coded = {
        a.code
        for need in needs
        if need in known
        for a in catalogue.attributes_of(need)
        if a.datatype == "singlevaluelist"
    }
    return {code: value for code, value in attributes.items() if code in coded and isinstance(value, str)}


@dataclass(frozen=True)
class Routing:
    """Where a case goes. `lead` is None when no department is left: the coordinator must arbitrate."""

    lead: Assignment | None
    co_handlers: tuple[Assignment, ...]
    sla_class: str
    emergency: bool
    decision: Decision

    @property
    def needs_arbitration(self) -> bool:
        return self.lead is None


def matches(conditions: Conditions, facts: RoutingFacts) -> bool:
    """True when every condition the rule sets holds for these facts."""
    if conditions.household_status_in and facts.household_status not in conditions.household_status_in:
        return False
    if conditions.special_groups_any and not set(conditions.special_groups_any) & set(facts.special_groups):
        return False
    if conditions.emergency is not None and conditions.emergency != facts.emergency:
        return False
    if any(facts.answers.get(code) not in values for code, values in conditions.answers.items()):
        return False
    least = conditions.min_months_without_income
    return least is None or (facts.months_without_income is not None and facts.months_without_income >= least)


def _candidates(catalogue: DispatchCatalogue, need: str, facts: RoutingFacts, day: Any) -> list[Rule]:
    found = [
        (index, rule)
        for index, rule in enumerate(catalogue.rules)
        if rule.kind == "dispatch" and rule.service == need and rule.in_effect(day) and matches(rule.when, facts)
    ]
    found.sort(key=lambda pair: (-pair[1].priority, -pair[1].when.size(), pair[0]))
    return [rule for _, rule in found]


def _facts_record(facts: RoutingFacts, excluded: frozenset[str]) -> dict[str, Any]:
    record = facts.model_dump(mode="json", exclude_none=True)
    record["acting_district_from"] = "place_of_hardship"
    if excluded:
        record["excluded_departments"] = sorted(excluded)
    return record


@dataclass(frozen=True)
class _Selection:
    """What the catalogue picks for a combination of facts (the decision minus the facts record)."""

    lead: Assignment | None
    co_handlers: tuple[Assignment, ...]
    sla_class: str
    emergency: bool
    rule_ids: tuple[str, ...]
    provisions: tuple[str, ...]
    skipped: dict[str, list[str]]


_SELECTION_CACHE_SIZE = 4096


def decide(
    catalogue: DispatchCatalogue, facts: RoutingFacts, *, exclude: frozenset[str] | set[str] = frozenset()
) -> Routing:
    """Route a case: lead, co-handlers, SLA class, and the rules and facts that decided (P2.3, P5.2d, P6.3).

    The selection depends only on the facts the rules look at (and the day, for effective dates), so it is
    memoised per catalogue; the facts record is the case's own."""
    excluded = frozenset(exclude)
    day = facts.received_at.date() if isinstance(facts.received_at, datetime) else facts.received_at
    key = (
        facts.district,
        facts.needs,
        facts.household_status,
        facts.special_groups,
        facts.emergency,
        facts.months_without_income,
        tuple(sorted(facts.answers.items())),
        day,
        excluded,
    )
    cache = catalogue.selection_cache
    selection = cache.get(key)
    if selection is None:
        if len(cache) >= _SELECTION_CACHE_SIZE:
            cache.clear()
        selection = cache[key] = _select(catalogue, facts, excluded, day)
    record = _facts_record(facts, excluded)
    if selection.skipped:
        record["refused_candidates"] = {need: list(ids) for need, ids in selection.skipped.items()}
    return Routing(
        lead=selection.lead,
        co_handlers=selection.co_handlers,
        sla_class=selection.sla_class,
        emergency=selection.emergency,
        decision=Decision(
            rule_ids=selection.rule_ids,
            provisions=selection.provisions,
            facts=record,
            catalogue_version=catalogue.version,
            decided_by="router",
        ),
    )


def _select(catalogue: DispatchCatalogue, facts: RoutingFacts, excluded: frozenset[str], day: Any) -> _Selection:
    rank = catalogue.sla_rank
    picks: list[Rule] = []
    skipped: dict[str, list[str]] = {}
    for need in facts.needs:
        candidates = _candidates(catalogue, need, facts, day)
        usable = [r for r in candidates if r.lead not in excluded]
        if usable:
            picks.append(usable[0])
        if refused := [r.id for r in candidates if r.lead in excluded]:
            skipped[need] = refused
    modifiers = [
        r
        for r in catalogue.rules
        if r.kind == "modifier"
        and r.in_effect(day)
        and (not r.services or set(r.services) & set(facts.needs))
        and matches(r.when, facts)
    ]

    rule_ids: list[str] = []
    provisions: list[str] = []
    lead_department: str | None = None
    sla_class = catalogue.fallback.sla_class
    co_departments: list[str] = []
    if picks:
        # The most urgent need leads; ties go to the need the operator named first.
        ordered = sorted(enumerate(picks), key=lambda pair: (rank[pair[1].sla_class or ""], pair[0]))
        lead_rule = ordered[0][1]
        lead_department = lead_rule.lead
        sla_class = lead_rule.sla_class or sla_class
        for _, rule in ordered:
            rule_ids.append(rule.id)
            provisions.extend(rule.provisions)
            co_departments.extend([d for d in (rule.lead, *rule.co_handlers) if d])
    if lead_department is None:
        fallback = catalogue.fallback
        rule_ids.append(fallback.id)
        provisions.extend(fallback.provisions)
        if fallback.lead not in excluded:
            lead_department = fallback.lead
    for rule in modifiers:
        rule_ids.append(rule.id)
        provisions.extend(rule.provisions)
        co_departments.extend(rule.co_handlers)
        if rule.sla_class and rank[rule.sla_class] < rank[sla_class]:
            sla_class = rule.sla_class
    provisions.extend([ONE_DOOR, PLACE_OF_HARDSHIP])

    district = facts.district
    lead = Assignment(department=lead_department, district=district, role="lead") if lead_department else None
    co_handlers: list[Assignment] = []
    for dept in co_departments:
        if dept != lead_department and dept not in excluded and dept not in {a.department for a in co_handlers}:
            co_handlers.append(Assignment(department=dept, district=district, role="co_handler"))
    return _Selection(
        lead=lead,
        co_handlers=tuple(co_handlers),
        sla_class=sla_class,
        emergency=facts.emergency or sla_class == catalogue.sla_classes[0].code,
        rule_ids=tuple(rule_ids),
        provisions=tuple(dict.fromkeys(provisions)),
        skipped=skipped,
    )
