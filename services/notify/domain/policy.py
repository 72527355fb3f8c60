"""The SLA policy as validated data: classes, targets, pauses, escalation ladders, with effective dates.

Parsing is pure (`parse_policy` takes the YAML's mapping); `load_policy` only reads the file. Every target
carries a rule id and the POLICY.md provisions it cites, so every SLA event can say which rule fired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator, model_validator

from contracts.deadlines import CalendarPoint, calendar_due
from services.notify.domain.workdays import WorkCalendar, parse_years

TargetName = Literal["sign_for", "first_contact", "resolution", "payment"]
Tier = Literal["department_head", "district_coordinator", "city_coordinator"]
TIERS: tuple[Tier, ...] = ("department_head", "district_coordinator", "city_coordinator")
PROVISION = re.compile(r"^P\d\.\d[a-z]?$")
_DURATION = TypeAdapter(timedelta)


class PolicyError(ValueError):
    """The SLA policy file is invalid; the service refuses to start with it."""


def _duration(value: Any) -> timedelta:
    return _DURATION.validate_python(value)


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TargetRule(_Strict):
    rule_id: str
    provisions: tuple[str, ...] = Field(min_length=1)
    within: timedelta | None = None
    by: CalendarPoint | None = None
    at_least: timedelta = timedelta(0)
    escalate: bool = True  # a breach of this target climbs the class's escalation ladder
    # `within` counts working days of the holiday calendar (P6.2), not calendar days: whole days only.
    working_days: bool = False

    @field_validator("provisions")
    @classmethod
    def _cites_provisions(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [p for p in value if not PROVISION.match(p)]
        if bad:
            raise ValueError(f"not a POLICY.md provision id: {bad}")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> TargetRule:
        if (self.within is None) == (self.by is None):
            raise ValueError(f"{self.rule_id}: give exactly one of `within` or `by`")
        if self.within is not None and self.within <= timedelta(0):
            raise ValueError(f"{self.rule_id}: `within` must be positive")
        if self.working_days and (self.within is None or self.within % timedelta(days=1)):
            raise ValueError(f"{self.rule_id}: `working_days` needs `within` in whole days (P1D, P5D)")
        return self

    def due(self, start: datetime, tz: timezone, work_calendar: WorkCalendar | None = None) -> datetime:
        """The unpaused deadline of a clock started at `start`; a working-day target counts the calendar's
        working time when one is given (None: round the clock, as for emergencies)."""
        if self.within is not None:
            if self.working_days and work_calendar is not None:
                return work_calendar.add(start, self.within)
            return start + self.within
        assert self.by is not None  # exactly one of `within` and `by` (validated)
        return calendar_due(start, self.by, tz, self.at_least)  # the definition the router uses too (P4.1)


class PauseRule(_Strict):
    allowed: bool = False
    max_count: int = Field(default=0, ge=0)
    max_total: timedelta = timedelta(0)
    reasons: tuple[str, ...] = ("waiting_for_caller", "caller_unreachable", "caller_requested_delay")


class EscalationStep(_Strict):
    tier: Tier
    after_breach: timedelta


class SlaClass(_Strict):
    name: str
    rule_id: str
    provisions: tuple[str, ...] = Field(min_length=1)
    name_zh: str
    name_en: str
    targets: dict[TargetName, TargetRule]
    pause: PauseRule = PauseRule()
    escalation: tuple[EscalationStep, ...] = ()

    def rule_for(self, target: str) -> TargetRule | None:
        """The rule of a target named by a clock (clocks name targets by plain strings)."""
        return next((rule for name, rule in self.targets.items() if name == target), None)

    @model_validator(mode="after")
    def _complete(self) -> SlaClass:
        for needed in ("sign_for", "resolution"):
            if needed not in self.targets:
                raise ValueError(f"class {self.name}: target `{needed}` is required")
        tiers = [step.tier for step in self.escalation]
        if tiers != sorted(tiers, key=TIERS.index) or len(set(tiers)) != len(tiers):
            raise ValueError(f"class {self.name}: escalation tiers must be distinct and in order {TIERS}")
        delays = [step.after_breach for step in self.escalation]
        if delays != sorted(delays):
            raise ValueError(f"class {self.name}: escalation delays must not decrease")
        return self


class PolicyVersion(_Strict):
    version: str
    effective_from: datetime
    warning_share: float = Field(default=0.75, gt=0, lt=1)
    fallback_class: str = "standard"
    classes: dict[str, SlaClass]

    @model_validator(mode="after")
    def _fallback_exists(self) -> PolicyVersion:
        if self.fallback_class not in self.classes:
            raise ValueError(f"fallback class {self.fallback_class!r} is not defined")
        if self.effective_from.tzinfo is None:
            raise ValueError("effective_from needs a timezone")
        return self


@dataclass(frozen=True)
class ClassChoice:
    """The class a clock runs under, and whether the requested one was unknown (P6.3: say why)."""

    sla_class: SlaClass
    requested: str
    fell_back: bool
    policy_version: str


@dataclass(frozen=True)
class SlaPolicy:
    tz: timezone
    versions: tuple[PolicyVersion, ...]  # sorted by effective_from
    warning_share_override: float | None = None
    # The working-day calendar the `working_days` targets count (holidays and make-up workdays).
    calendar: WorkCalendar | None = None

    def version_at(self, when: datetime) -> PolicyVersion:
        current = None
        for version in self.versions:
            if version.effective_from <= when:
                current = version
        return current or self.versions[0]

    def warning_share(self, when: datetime) -> float:
        return self.warning_share_override or self.version_at(when).warning_share

    def choose(self, requested: str | None, when: datetime) -> ClassChoice:
        """The class named by the router, or the fallback class when it is unknown to this policy."""
        version = self.version_at(when)
        name = requested or version.fallback_class
        if name in version.classes:
            return ClassChoice(version.classes[name], name, False, version.version)
        return ClassChoice(version.classes[version.fallback_class], name, True, version.version)

    def payment_class(self, when: datetime) -> SlaClass:
        version = self.version_at(when)
        for sla_class in version.classes.values():
            if "payment" in sla_class.targets:
                return sla_class
        raise PolicyError("no class defines a `payment` target")

    def class_named(self, name: str, when: datetime) -> SlaClass:
        return self.choose(name, when).sla_class


def _offset(text: str) -> timezone:
    match = re.fullmatch(r"([+-])(\d{2}):(\d{2})", text)
    if not match:
        raise PolicyError(f"timezone must look like +08:00, got {text!r}")
    sign = 1 if match.group(1) == "+" else -1
    return timezone(sign * timedelta(hours=int(match.group(2)), minutes=int(match.group(3))))


def parse_policy(
    data: dict[str, Any], *, warning_share: float | None = None, work_calendar: WorkCalendar | None = None
) -> SlaPolicy:
    """Validate the policy mapping; raise PolicyError naming what is wrong."""
    try:
        tz = _offset(str(data.get("timezone", "+08:00")))
        versions = []
        for raw in data["versions"]:
            classes = {name: SlaClass(name=name, **body) for name, body in raw["classes"].items()}
            versions.append(PolicyVersion(**{**raw, "classes": classes}))
    except PolicyError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise PolicyError(f"invalid SLA policy: {exc}") from exc
    if not versions:
        raise PolicyError("the SLA policy has no version")
    for version in versions:
        ids = [t.rule_id for c in version.classes.values() for t in c.targets.values()]
        if len(ids) != len(set(ids)):
            raise PolicyError(f"version {version.version}: duplicate target rule ids")
    if warning_share is not None and not 0 < warning_share < 1:
        raise PolicyError("warning share must be between 0 and 1")
    work_calendar = work_calendar if work_calendar is not None else WorkCalendar(tz)
    return SlaPolicy(tz, tuple(sorted(versions, key=lambda v: v.effective_from)), warning_share, work_calendar)


HOLIDAY_FILES = ("cn-public-holidays-2026.csv",)  # the State Council's schedules shipped with the service


def packaged_calendar(tz: timezone) -> WorkCalendar:
    """The working-day calendar of the packaged schedules (`data/cn-public-holidays-<year>.csv`), validated."""
    work_calendar = WorkCalendar(tz)
    for name in HOLIDAY_FILES:
        text = resources.files("services.notify").joinpath(f"data/{name}").read_text(encoding="utf-8")
        for year in parse_years(text, source=f"packaged:{name}").values():
            work_calendar.add_year(year)
    return work_calendar


def load_policy(
    path: str | Path | None = None, *, warning_share: float | None = None, work_calendar: WorkCalendar | None = None
) -> SlaPolicy:
    """Read the policy file (the packaged default when `path` is empty), with the packaged holiday
    calendar unless one is given."""
    if path:
        text = Path(path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.notify").joinpath("data/sla_policy.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    tz = _offset(str(data.get("timezone", "+08:00")))
    chosen = work_calendar if work_calendar is not None else packaged_calendar(tz)
    return parse_policy(data, warning_share=warning_share, work_calendar=chosen)
