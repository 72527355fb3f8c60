"""Contract events for every service's tests, with sensible defaults: one builder per event."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime, timedelta
from typing import Any

from contracts.events.hotline import Caller, HelpRequested, Place
from contracts.events.router import (
    Assignment,
    CaseDispatched,
    CaseResolved,
    CaseReturned,
    CaseSignedFor,
    Decision,
)

T0 = datetime(2026, 2, 15, 2, 0, tzinfo=UTC)  # 10:00 in Chongqing
PHONE = "13812345678"

# Unique within a process, and unlikely to meet another test process's ids on a shared topic.
_sequence = itertools.count(random.randint(0, 899_999))


def new_case_id(on: date | None = None, seq: int | None = None) -> str:
    """A case number of the day `on` (today by default); a fresh sequence number unless `seq` is given."""
    day = on or datetime.now(UTC).date()
    return f"CQ-{day:%Y%m%d}-{next(_sequence) % 1_000_000 if seq is None else seq:06d}"


def help_requested(
    case_id: str,
    *needs: str,
    district: str = "500103",
    at: datetime | None = None,
    caller: Caller | None = None,
    phone: str = PHONE,
    id_card: str | None = None,
    hukou_district: str | None = None,
    **fields: Any,
) -> HelpRequested:
    """A call as the hotline publishes it: received `at` (now by default), needs "other" unless named."""
    received = at or fields.pop("received_at", None) or datetime.now(UTC)
    return HelpRequested(
        case_id=case_id,
        received_at=received,
        occurred_at=fields.pop("occurred_at", received),
        operator_id=fields.pop("operator_id", "op-1"),
        caller=caller or Caller(name="张三", phone=phone, id_card=id_card, hukou_district=hukou_district),
        place=fields.pop("place", None) or Place(district=district),
        needs=needs or ("other",),
        **fields,
    )


def lead(department: str = "civil_affairs", district: str = "500103") -> Assignment:
    return Assignment(department=department, district=district, role="lead")


def co(department: str, district: str = "500103") -> Assignment:
    return Assignment(department=department, district=district, role="co_handler")


def dispatched(
    case_id: str,
    *,
    at: datetime = T0,
    sla_class: str = "standard",
    hop: int = 1,
    department: str = "civil_affairs",
    district: str = "500103",
    co_handlers: tuple[str, ...] = (),
    needs: tuple[str, ...] = ("homeless_cold",),
    **extra: Any,
) -> CaseDispatched:
    return CaseDispatched(
        case_id=case_id,
        occurred_at=at,
        district=district,
        lead=lead(department, district),
        co_handlers=tuple(co(d, district) for d in co_handlers),
        needs=needs,
        sla_class=sla_class,
        emergency=sla_class == "emergency",
        decision=Decision(rule_ids=("R-TEST",)),
        hop=hop,
        **extra,
    )


def signed(case_id: str, *, at: datetime, department: str = "civil_affairs", role: str = "lead") -> CaseSignedFor:
    return CaseSignedFor(
        case_id=case_id,
        occurred_at=at,
        actor="w-1",
        department=department,
        district="500103",
        task_id=f"{case_id}:{department}",
        role=role,
    )


def returned(case_id: str, *, at: datetime, department: str = "civil_affairs") -> CaseReturned:
    return CaseReturned(
        case_id=case_id,
        occurred_at=at,
        actor="w-1",
        department=department,
        district="500103",
        task_id=f"{case_id}:{department}",
        reason="not_our_responsibility",
    )


def resolved(case_id: str, *, at: datetime, department: str = "civil_affairs") -> CaseResolved:
    return CaseResolved(
        case_id=case_id, occurred_at=at, actor="w-1", department=department, district="500103", outcome="rescued"
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
