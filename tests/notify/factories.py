"""Contract events for notify's tests, with sensible defaults."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.events.router import (
    Assignment,
    CaseDispatched,
    CaseResolved,
    CaseReturned,
    CaseSignedFor,
    Decision,
)

T0 = datetime(2026, 2, 15, 2, 0, tzinfo=UTC)  # 10:00 in Chongqing


def case_id() -> str:
    return f"CQ-20260215-{random.randint(0, 999_999):06d}"


def lead(department: str = "civil_affairs", district: str = "500103") -> Assignment:
    return Assignment(department=department, district=district, role="lead")


def co(department: str, district: str = "500103") -> Assignment:
    return Assignment(department=department, district=district, role="co_handler")


def dispatched(
    cid: str,
    *,
    at: datetime = T0,
    sla_class: str = "standard",
    hop: int = 1,
    department: str = "civil_affairs",
    co_handlers: tuple[str, ...] = (),
    **extra: Any,
) -> CaseDispatched:
    return CaseDispatched(
        case_id=cid,
        occurred_at=at,
        district="500103",
        lead=lead(department),
        co_handlers=tuple(co(d) for d in co_handlers),
        needs=("homeless_cold",),
        sla_class=sla_class,
        emergency=sla_class == "emergency",
        decision=Decision(rule_ids=("R-TEST",)),
        hop=hop,
        **extra,
    )


def signed(cid: str, *, at: datetime, department: str = "civil_affairs", role: str = "lead") -> CaseSignedFor:
    return CaseSignedFor(
        case_id=cid,
        occurred_at=at,
        actor="w-1",
        department=department,
        district="500103",
        task_id=f"{cid}:{department}",
        role=role,
    )


def returned(cid: str, *, at: datetime, department: str = "civil_affairs") -> CaseReturned:
    return CaseReturned(
        case_id=cid,
        occurred_at=at,
        actor="w-1",
        department=department,
        district="500103",
        task_id=f"{cid}:{department}",
        reason="not_our_responsibility",
    )


def resolved(cid: str, *, at: datetime, department: str = "civil_affairs") -> CaseResolved:
    return CaseResolved(
        case_id=cid, occurred_at=at, actor="w-1", department=department, district="500103", outcome="rescued"
    )


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)
