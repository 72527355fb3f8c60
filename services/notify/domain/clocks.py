"""Clock arithmetic: targets, pauses and the moments a warning, a breach or an escalation is due.

A clock starts once and never restarts. Each target has an unpaused deadline (`base_due`); a pause shifts
every target still unmet and not yet due when the pause began, by the pause's length, capped by the
class's pause allowance. While a pause is open the deadline is the latest it can become (the allowance is
used up and the clock runs again by itself), so a timer can always be set.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from services.notify.domain.policy import SlaClass, TargetRule
from services.notify.domain.workdays import RestSpan, WorkCalendar, add_working, sub_working, working_between

ClockKind = Literal["citizen", "department"]
Stage = Literal["warning", "breach", "escalation"]


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")


class PauseRecord(_State):
    started_at: datetime
    ended_at: datetime | None = None
    reason: str
    by: str
    note: str = ""


class RestDays(_State):
    """Consecutive non-working days, [start, end) (an object: FerretDB stores no nested arrays)."""

    start: datetime
    end: datetime


class TargetState(_State):
    rule_id: str
    provisions: tuple[str, ...]
    span_start: datetime  # when this target's time began (the clock start, or a reopening)
    base_due: datetime  # the deadline before pauses
    met_at: datetime | None = None
    # A working-day target (P6.2) keeps the rest days of its window, from its start to the latest its
    # deadline can become with the whole pause allowance, so a pause shifts it by working time alone.
    working_days: bool = False
    rest: list[RestDays] = []
    weekdays_only: list[int] = []  # years the holiday calendar did not hold: counted Monday to Friday

    @property
    def rest_spans(self) -> list[RestSpan]:
        return [(r.start, r.end) for r in self.rest]


def _shifted(state: TargetState, due: datetime, pause_start: datetime, length: timedelta) -> datetime:
    """The deadline after a pause of `length` from `pause_start`: by its length, or by the working time it
    took for a working-day target."""
    if not state.working_days:
        return due + length
    rest = state.rest_spans
    return add_working(due, working_between(pause_start, pause_start + length, rest), rest)


class Clock(_State):
    """A citizen clock (one per case, or per grant for payment) or a department clock (one per assignment)."""

    key: str
    kind: ClockKind
    department: str | None = None
    district: str
    role: Literal["lead", "co_handler"] | None = None
    sla_class: str
    started_at: datetime
    ended_at: datetime | None = None
    end_reason: str | None = None
    pauses: list[PauseRecord] = []
    pause_max_total_s: float = 0.0
    targets: dict[str, TargetState] = {}

    @property
    def open(self) -> bool:
        return self.ended_at is None

    @property
    def paused(self) -> bool:
        return any(p.ended_at is None for p in self.pauses)

    def due(self, target: str) -> datetime:
        """The deadline of `target`, shifted by the pauses that applied to it."""
        state = self.targets[target]
        due = state.base_due
        allowance = timedelta(seconds=self.pause_max_total_s)
        for pause in sorted(self.pauses, key=lambda p: p.started_at):
            length = allowance if pause.ended_at is None else min(pause.ended_at - pause.started_at, allowance)
            allowance -= length
            unmet_then = state.met_at is None or state.met_at > pause.started_at
            if unmet_then and due > pause.started_at and pause.started_at >= state.span_start:
                due = _shifted(state, due, pause.started_at, length)
        return due

    def met_on_time(self, target: str) -> bool | None:
        state = self.targets[target]
        if state.met_at is None:
            return None
        return state.met_at <= self.due(target)

    def meet(self, target: str, at: datetime) -> bool:
        """Record that `target` was met at `at` (only the first time); True if that changed anything."""
        state = self.targets.get(target)
        if state is None or state.met_at is not None:
            return False
        state.met_at = at
        return True

    def end(self, at: datetime, reason: str) -> bool:
        if self.ended_at is not None:
            return False
        self.ended_at = at
        self.end_reason = reason
        for pause in self.pauses:
            if pause.ended_at is None:
                pause.ended_at = at
        return True

    def pause_used(self, now: datetime) -> timedelta:
        used = timedelta(0)
        for pause in self.pauses:
            used += (pause.ended_at or now) - pause.started_at
        return min(used, timedelta(seconds=self.pause_max_total_s))


def new_target(
    rule: TargetRule,
    start: datetime,
    tz: timezone,
    work_calendar: WorkCalendar | None = None,
    pause_allowance: timedelta = timedelta(0),
) -> TargetState:
    """A target's state from `start`; a working-day rule counts `work_calendar` (None: round the clock)."""
    base_due = rule.due(start, tz, work_calendar)
    target = TargetState(rule_id=rule.rule_id, provisions=rule.provisions, span_start=start, base_due=base_due)
    if rule.working_days and work_calendar is not None:
        latest = work_calendar.add(base_due, pause_allowance)
        target.working_days = True
        target.rest = [RestDays(start=a, end=b) for a, b in work_calendar.rest_spans(start, latest)]
        target.weekdays_only = work_calendar.uncovered(start, latest)
    return target


def start_clock(
    *,
    key: str,
    kind: ClockKind,
    sla_class: SlaClass,
    start: datetime,
    tz: timezone,
    district: str,
    department: str | None = None,
    role: Literal["lead", "co_handler"] | None = None,
    targets: tuple[str, ...] | None = None,
    work_calendar: WorkCalendar | None = None,
) -> Clock:
    """A clock with the class's targets (or the named subset), its deadlines computed from `start`
    (working-day targets over `work_calendar`; None: round the clock)."""
    names = [t for t in sla_class.targets if targets is None or t in targets]
    return Clock(
        key=key,
        kind=kind,
        department=department,
        district=district,
        role=role,
        sla_class=sla_class.name,
        started_at=start,
        pause_max_total_s=sla_class.pause.max_total.total_seconds(),
        targets={
            name: new_target(sla_class.targets[name], start, tz, work_calendar, sla_class.pause.max_total)
            for name in names
        },
    )


@dataclass(frozen=True)
class TimerSpec:
    """One moment something must happen to a clock: a warning, a breach or one escalation tier."""

    id: str
    at: datetime
    payload: dict[str, Any] = field(hash=False, compare=False)


def clock_timers(
    case_id: str,
    clock: Clock,
    sla_class: SlaClass,
    warning_share: float,
    *,
    escalate: bool,
    lead_department: str | None,
    answered: Collection[str] = (),
) -> list[TimerSpec]:
    """Every pending stage of every unmet target of an open clock, in time order; a target in `answered`
    (its escalation answered by the department) climbs the escalation ladder no further."""
    if not clock.open:
        return []
    out: list[TimerSpec] = []
    for target, state in clock.targets.items():
        if state.met_at is not None:
            continue
        due = clock.due(target)
        if state.working_days:  # warn when that share of the target's working time is used
            span = working_between(state.span_start, state.base_due, state.rest_spans)
            warn_at = sub_working(due, span * (1 - warning_share), state.rest_spans)
        else:
            warn_at = due - (state.base_due - state.span_start) * (1 - warning_share)
        base = {
            "case_id": case_id,
            "clock": clock.kind,
            "clock_key": clock.key,
            "target": target,
            "department": clock.department if clock.kind == "department" else lead_department,
            "district": clock.district,
            "due_at": due,
            "sla_class": clock.sla_class,
            "rule_id": state.rule_id,
            "provisions": list(state.provisions),
        }
        stages: list[tuple[str, datetime, dict[str, Any]]] = [
            ("warning", warn_at, {"share_elapsed": warning_share}),
            ("breach", due, {}),
        ]
        rule = sla_class.rule_for(target)
        if escalate and (rule is None or rule.escalate) and target not in answered:
            stages += [
                (f"escalation:{step.tier}", due + step.after_breach, {"tier": step.tier})
                for step in sla_class.escalation
            ]
        for stage, at, extra in stages:
            # The department head is the current lead's: a new lead gets its own escalation.
            who = f"|{base['department']}" if stage == "escalation:department_head" else ""
            timer_id = f"{case_id}|{clock.key}|{target}|{stage}{who}|{int(at.timestamp())}"
            out.append(TimerSpec(timer_id, at, {**base, "stage": stage.split(":")[0], **extra}))
    return sorted(out, key=lambda t: t.at)
