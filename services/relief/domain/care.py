"""The care register (P2.2 visits and patrols, P5.3 ledger with a named responsible worker): who is visited,
by whom, how often (the visit schedule, dated rule data), what each visit found, and which visits were
missed. Pure: plain values in, the changed entry (with its events) out.

A visit is due `every_days` after the last one (after enrolment for the first), by the shortest interval
of the person's groups in force on that day. A visit due on day D and not recorded by the end of D is
missed: one `VisitMissed` event per (entry, due day), however often the sweep looks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from common.errors import DomainError
from contracts.events.care import VisitMissed
from contracts.provisions import ProvisionIds

VISITS_KEPT = 20  # the latest visits an entry holds (the full history is insert-only beside it)
MISSED_KEPT = 50
DUE_SOON_DAYS = 3  # a visit due within this many days shows as "due" on the worker's list


class CareGroup(StrEnum):
    """Why a person is on the register (P2.2, P5.3)."""

    ELDERLY_ALONE = "elderly_alone"  # 高龄、失能、独居、留守老年人 (P2.2)
    DISABLED = "disabled"  # 残疾人 (P2.2)
    MENTAL_DISORDER = "mental_disorder"  # 精神障碍患者 (P2.2)
    ORPHAN = "orphan"  # 孤儿 (P2.2)
    UNSUPPORTED_CHILD = "unsupported_child"  # 事实无人抚养儿童 (P2.2)
    LEFT_BEHIND_CHILD = "left_behind_child"  # 农村留守儿童 (P2.2)
    HOMELESS = "homeless"  # 流浪乞讨人员 (P2.2)
    TEKUN = "tekun"  # 特困人员, incl. those who cannot look after themselves (P2.2)
    NO_CARER = "no_carer"  # 因疫情无人监护、照料 (P5.3)


class VisitMode(StrEnum):
    """How a visit was made (P2.2: in person, by phone, routine checks)."""

    IN_PERSON = "in_person"
    PHONE = "phone"
    ROUTINE_CHECK = "routine_check"


class VisitOutcome(StrEnum):
    WELL = "well"  # seen, nothing needed
    NEEDS_FOUND = "needs_found"  # a need was found (it may open a case)
    NOT_REACHED = "not_reached"  # nobody answered: the visit still counts as an attempt, not as done


class Status(StrEnum):
    ACTIVE = "active"
    CLOSED = "closed"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ---------------------------------------------------------------------------- the visit schedule (data)


class VisitRule(_Frozen):
    """How often one group is visited from a date on; decisions cite its id."""

    id: str = Field(pattern=r"^V-P\d\.\d[a-z]?-[A-Z0-9-]+$")
    group: CareGroup
    provisions: ProvisionIds
    every_days: int = Field(ge=1, le=366)
    effective_from: date
    name_zh: str = Field(min_length=1)
    name_en: str = Field(min_length=1)


class VisitSchedule(_Frozen):
    """The visit schedule file: rules by group and date; every group has a rule from the first date on."""

    version: int
    example: bool = False
    rules: tuple[VisitRule, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _complete(self) -> VisitSchedule:
        ids = [r.id for r in self.rules]
        if len(ids) != len(set(ids)):
            raise ValueError("规则编号重复 | rule ids must be unique")
        keys = [(r.group, r.effective_from) for r in self.rules]
        if len(keys) != len(set(keys)):
            raise ValueError("同一群体同一日期有两条规则 | two rules for one group from one date")
        missing = sorted(set(CareGroup) - {r.group for r in self.rules})
        if missing:
            raise ValueError(f"缺少群体的探访规则 {missing} | groups without a visit rule: {missing}")
        return self

    def rule_in_force(self, group: CareGroup, on: date) -> VisitRule | None:
        rules = [r for r in self.rules if r.group == group and r.effective_from <= on]
        return max(rules, key=lambda r: r.effective_from) if rules else None

    def rule_for(self, groups: Iterable[CareGroup], on: date) -> VisitRule:
        """The rule that sets a person's next visit: the shortest interval among their groups' rules."""
        rules = [r for g in groups if (r := self.rule_in_force(CareGroup(g), on)) is not None]
        if not rules:
            raise DomainError(
                f"{on.isoformat()} 没有适用的探访规则",
                f"no visit rule is in force on {on.isoformat()} for these groups",
                field="groups",
                status=422,
            )
        return min(rules, key=lambda r: (r.every_days, r.id))


def load_visit_schedule(text: str) -> VisitSchedule:
    """Parse and validate the visit schedule (raises ValueError / ValidationError: the service does not start)."""
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError("the visit schedule is a mapping with `version` and `rules`")
    return VisitSchedule.model_validate(data)


# ---------------------------------------------------------------------------- the register entry


class CareVisit(_Frozen):
    """One visit as recorded: when, by whom, how, what it found."""

    visit_id: str
    visited_on: date
    worker: str
    worker_shown: str
    mode: VisitMode
    outcome: VisitOutcome
    needs: tuple[str, ...] = ()
    note: str = ""
    recorded_at: datetime
    case_proposal: str | None = None  # the outreach proposal a need found on the visit made (P2.3)


class CareEntry(_Frozen):
    """A person on the register (the aggregate written through `common.aggregates`)."""

    id: str
    name: str
    district: str
    township: str | None = None
    address: str | None = None
    source: str  # "registry" or "case"
    recipient_id: str | None = None
    case_id: str | None = None
    groups: tuple[CareGroup, ...] = Field(min_length=1)
    worker: str
    worker_shown: str
    enrolled_on: date
    enrolled_by: str
    status: Status = Status.ACTIVE
    rule_id: str  # the rule that set `next_due_on`
    provisions: tuple[str, ...] = ()
    last_visit_on: date | None = None
    next_due_on: date
    visits: tuple[CareVisit, ...] = ()  # the latest `VISITS_KEPT`, newest last
    visit_count: int = 0
    missed: tuple[date, ...] = ()  # due days reported missed (the latest `MISSED_KEPT`)
    outbox: tuple[dict[str, Any], ...] = ()
    version: int = 0


def enrol(
    *,
    entry_id: str,
    name: str,
    district: str,
    groups: Iterable[CareGroup],
    worker: str,
    worker_shown: str,
    source: str,
    enrolled_on: date,
    enrolled_by: str,
    schedule: VisitSchedule,
    recipient_id: str | None = None,
    case_id: str | None = None,
    township: str | None = None,
    address: str | None = None,
) -> CareEntry:
    """A new entry; its first visit is due one interval after enrolment."""
    chosen = tuple(dict.fromkeys(CareGroup(g) for g in groups))
    rule = schedule.rule_for(chosen, enrolled_on)
    return CareEntry(
        id=entry_id,
        name=name,
        district=district,
        township=township,
        address=address,
        source=source,
        recipient_id=recipient_id,
        case_id=case_id,
        groups=chosen,
        worker=worker,
        worker_shown=worker_shown,
        enrolled_on=enrolled_on,
        enrolled_by=enrolled_by,
        rule_id=rule.id,
        provisions=rule.provisions,
        next_due_on=enrolled_on + timedelta(days=rule.every_days),
    )


def record_visit(entry: CareEntry, visit: CareVisit, schedule: VisitSchedule, today: date) -> CareEntry | None:
    """The entry with the visit recorded; None if this visit is recorded already (a retry). A visit that
    reached the person moves the next due day to one interval after it; `not_reached` moves nothing."""
    if entry.status is not Status.ACTIVE:
        raise DomainError("该人员已退出关爱名册", "this person is no longer on the register", status=409)
    if visit.visited_on > today:
        raise DomainError(
            "探访日期不能晚于今天", "a visit cannot be dated in the future", field="visited_on", status=422
        )
    if any(v.visit_id == visit.visit_id for v in entry.visits):
        return None
    changes: dict[str, Any] = {
        "visits": (*entry.visits, visit)[-VISITS_KEPT:],
        "visit_count": entry.visit_count + 1,
    }
    reached = visit.outcome is not VisitOutcome.NOT_REACHED
    if reached and (entry.last_visit_on is None or visit.visited_on >= entry.last_visit_on):
        rule = schedule.rule_for(entry.groups, visit.visited_on)
        changes |= {
            "last_visit_on": visit.visited_on,
            "next_due_on": visit.visited_on + timedelta(days=rule.every_days),
            "rule_id": rule.id,
            "provisions": rule.provisions,
        }
    return entry.model_copy(update=changes)


def reassign(entry: CareEntry, worker: str, worker_shown: str) -> CareEntry | None:
    """The entry with another responsible worker (P5.3: always a named one); None if unchanged."""
    if entry.worker == worker:
        return None
    return entry.model_copy(update={"worker": worker, "worker_shown": worker_shown})


def mark_missed(entry: CareEntry, due_on: date, today: date) -> CareEntry | None:
    """The entry with the visit due on `due_on` reported missed (a `VisitMissed` in its outbox), if that
    visit is still the one owed, its day is over and it was not reported before; else None."""
    if entry.status is not Status.ACTIVE or entry.next_due_on != due_on or due_on >= today or due_on in entry.missed:
        return None
    event = VisitMissed(
        case_id=entry.id,
        entry_id=entry.id,
        district=entry.district,
        worker=entry.worker,
        worker_shown=entry.worker_shown,
        groups=tuple(str(g) for g in entry.groups),
        due_on=due_on,
        last_visit_on=entry.last_visit_on,
        rule_id=entry.rule_id,
        provisions=entry.provisions,
    )
    return entry.model_copy(
        update={
            "missed": (*entry.missed, due_on)[-MISSED_KEPT:],
            "outbox": (*entry.outbox, {"event": event.model_dump(mode="json")}),
        }
    )


def check_day(due_on: date, today: date) -> date:
    """The day the sweep looks at a due visit: the day after it, or today when that is past already."""
    return max(due_on + timedelta(days=1), today)


def due_status(entry: CareEntry, today: date, soon_days: int = DUE_SOON_DAYS) -> str:
    """`overdue` (its day has passed), `due` (today or within `soon_days`), or `scheduled`."""
    if entry.next_due_on < today:
        return "overdue"
    if entry.next_due_on <= today + timedelta(days=soon_days):
        return "due"
    return "scheduled"
