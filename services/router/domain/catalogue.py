"""The dispatch catalogue: rules as versioned data, validated at start-up (STYLE.md 9).

A bad rule stops the service with an error naming the rule and the reason.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from contracts.catalogue import service_catalogue, service_codes
from contracts.codes import departments
from contracts.deadlines import CalendarPoint, calendar_due
from contracts.events.base import BUSINESS_TZ
from contracts.events.hotline import HouseholdStatus, SpecialGroup

PROVISION = r"^P\d\.\d[a-z]?$"
ReturnReason = Literal["not_our_responsibility", "wrong_district", "duplicate", "insufficient_information"]
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


class CatalogueError(ValueError):
    """The dispatch catalogue is invalid; the message names the rule and the reason."""


def parse_duration(text: str) -> timedelta:
    """A small ISO 8601 duration (`P5D`, `PT2H`, `P1DT6H`, `PT30M`, `PT0S`)."""
    match = _DURATION.match(text)
    if not match or text in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration like P5D or PT2H: {text!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Conditions(_Model):
    """All given conditions must hold for a rule to match."""

    household_status_in: tuple[HouseholdStatus, ...] = ()
    special_groups_any: tuple[SpecialGroup, ...] = ()
    emergency: bool | None = None
    min_months_without_income: int | None = Field(default=None, ge=0)
    # The intake's typed answers (contracts/data/services.yaml single-value attributes): code -> any of values.
    answers: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    def size(self) -> int:
        return (
            sum(1 for v in (self.household_status_in, self.special_groups_any) if v)
            + sum(1 for v in (self.emergency, self.min_months_without_income) if v is not None)
            + len(self.answers)
        )


class SlaClass(_Model):
    """A class's department-task deadline: `task_due` after dispatch, or `by` a point of the calendar in the
    business timezone with `at_least` as a floor (`contracts.deadlines`, the definition notify uses too)."""

    code: str
    task_due: timedelta | None = None
    by: CalendarPoint | None = None
    at_least: timedelta = timedelta(0)
    provisions: tuple[str, ...] = ()

    @field_validator("task_due", "at_least", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_form(self) -> SlaClass:
        if (self.task_due is None) == (self.by is None):
            raise ValueError(f"sla class {self.code}: give exactly one of `task_due` or `by`")
        return self

    def due(self, start: datetime) -> datetime:
        """The deadline of a department task of this class created at `start`."""
        if self.task_due is not None:
            return start + self.task_due
        assert self.by is not None  # exactly one form (validated)
        return calendar_due(start, self.by, BUSINESS_TZ, self.at_least)


class Rule(_Model):
    id: str = Field(pattern=r"^[A-Z][A-Za-z0-9.\-]*$")
    kind: Literal["dispatch", "modifier"]
    provisions: tuple[str, ...] = Field(min_length=1)
    service: str | None = None  # dispatch rules: the service code they route
    services: tuple[str, ...] = ()  # modifiers: limit to these service codes (empty: any)
    when: Conditions = Conditions()
    priority: int = 0
    lead: str | None = None
    co_handlers: tuple[str, ...] = ()
    sla_class: str | None = None
    effective_from: date
    effective_to: date | None = None  # exclusive

    @field_validator("provisions")
    @classmethod
    def _provisions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in value if not re.match(PROVISION, p)]
        if bad:
            raise ValueError(f"provision ids must look like P5.2a: {bad}")
        return value

    @model_validator(mode="after")
    def _shape(self) -> Rule:
        if self.kind == "dispatch" and (self.service is None or self.lead is None or self.sla_class is None):
            raise ValueError("a dispatch rule needs service, lead and sla_class")
        if self.kind == "modifier" and (self.service is not None or self.lead is not None):
            raise ValueError("a modifier names no service or lead (use services: [...] to limit it)")
        if self.kind == "modifier" and not (self.co_handlers or self.sla_class):
            raise ValueError("a modifier must add co_handlers or set sla_class")
        if self.effective_to is not None and self.effective_to <= self.effective_from:
            raise ValueError("effective_to must be after effective_from")
        return self

    def in_effect(self, day: date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day < self.effective_to)


class Fallback(_Model):
    id: str
    provisions: tuple[str, ...] = Field(min_length=1)
    lead: str
    sla_class: str


class DispatchCatalogue(_Model):
    version: str
    effective_from: date
    fallback: Fallback
    max_returns: int = Field(default=2, ge=1)
    returns: dict[ReturnReason, Literal["redispatch", "arbitration"]]
    sla_classes: tuple[SlaClass, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)

    @cached_property
    def sla_rank(self) -> dict[str, int]:
        """SLA class code -> rank (0 is the most urgent)."""
        return {c.code: i for i, c in enumerate(self.sla_classes)}

    @cached_property
    def selection_cache(self) -> dict[Any, Any]:
        """Routing selections already made with this catalogue (see `routing.decide`); bounded there."""
        return {}

    def sla(self, code: str) -> SlaClass:
        return self.sla_classes[self.sla_rank[code]]

    def cited_provisions(self) -> set[str]:
        return {p for r in self.rules for p in r.provisions} | set(self.fallback.provisions)


def _check_references(cat: DispatchCatalogue) -> None:
    services, depts = service_codes(), departments()
    classes = {c.code for c in cat.sla_classes}
    seen: set[str] = set()
    for rule in cat.rules:
        where = f"dispatch catalogue rule {rule.id}"
        if rule.id in seen:
            raise CatalogueError(f"{where}: duplicate rule id")
        seen.add(rule.id)
        for code in (rule.service, *rule.services):
            if code is not None and code not in services:
                raise CatalogueError(f"{where}: unknown service code {code!r} (see contracts/data/services.yaml)")
        for dept in (rule.lead, *rule.co_handlers):
            if dept is not None and dept not in depts:
                raise CatalogueError(f"{where}: unknown department {dept!r} (see contracts/data/departments.csv)")
        if rule.lead is not None and rule.lead in rule.co_handlers:
            raise CatalogueError(f"{where}: the lead {rule.lead!r} cannot also be a co-handler")
        for code, values in rule.when.answers.items():
            _check_answer(where, rule, code, values)
        if rule.sla_class is not None and rule.sla_class not in classes:
            raise CatalogueError(f"{where}: unknown sla_class {rule.sla_class!r}")
        if rule.effective_from < cat.effective_from:
            raise CatalogueError(f"{where}: effective before the catalogue itself ({cat.effective_from})")
    if cat.fallback.lead not in depts:
        raise CatalogueError(f"dispatch catalogue fallback: unknown department {cat.fallback.lead!r}")
    if cat.fallback.sla_class not in classes:
        raise CatalogueError(f"dispatch catalogue fallback: unknown sla_class {cat.fallback.sla_class!r}")


def _check_answer(where: str, rule: Rule, code: str, values: tuple[str, ...]) -> None:
    """An answer condition names a single-value attribute of the rule's services and some of its values."""
    catalogue = service_catalogue()
    services = [rule.service] if rule.service else list(rule.services)
    attributes = {a.code: a for s in services for a in catalogue.attributes_of(s)}
    attribute = attributes.get(code)
    if attribute is None or attribute.datatype != "singlevaluelist":
        named = ", ".join(services) or "its services"
        raise CatalogueError(f"{where}: {code!r} is not a single-value answer of {named}")
    allowed = {o.key for o in attribute.options()}
    if not values or any(v not in allowed for v in values):
        raise CatalogueError(f"{where}: answer {code!r} takes some of {sorted(allowed)}, got {list(values)}")


def _name_the_rule(raw: dict[str, Any], exc: ValidationError) -> CatalogueError:
    problems = []
    for err in exc.errors():
        loc = list(err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            rules = raw.get("rules") or []
            rule_id = rules[loc[1]].get("id", f"#{loc[1] + 1}") if loc[1] < len(rules) else f"#{loc[1] + 1}"
            where = ".".join(map(str, loc[2:]))
            problems.append(f"rule {rule_id}: {where + ': ' if where else ''}{msg}")
        else:
            problems.append(f"{'.'.join(map(str, loc))}: {msg}")
    return CatalogueError("dispatch catalogue invalid: " + "; ".join(problems))


def parse_catalogue(raw: Any) -> DispatchCatalogue:
    """Validate catalogue data; raise `CatalogueError` naming the bad rule."""
    if not isinstance(raw, dict):
        raise CatalogueError("dispatch catalogue invalid: the document must be a mapping")
    try:
        catalogue = DispatchCatalogue.model_validate(raw)
    except ValidationError as exc:
        raise _name_the_rule(raw, exc) from None
    _check_references(catalogue)
    return catalogue


def load_catalogue(path: str | Path | None = None) -> DispatchCatalogue:
    """Load the catalogue from `path`, or the one shipped with the router."""
    if path is None:
        text = resources.files("services.router.data").joinpath("dispatch_catalogue.yaml").read_text("utf-8")
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogueError(f"dispatch catalogue is not valid YAML: {exc}") from None
    return parse_catalogue(raw)
