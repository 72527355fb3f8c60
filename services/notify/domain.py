"""SLA arithmetic: pure functions of plain data (skeleton targets; SLA policy data comes next)."""

from __future__ import annotations

from datetime import datetime, timedelta

# P2.2: life-safety emergencies are resolved within 2 hours; other cases within 5 days (skeleton).
RESOLUTION_TARGETS = {"emergency": timedelta(hours=2), "standard": timedelta(days=5)}


def resolution_due(sla_class: str, started_at: datetime) -> datetime:
    return started_at + RESOLUTION_TARGETS.get(sla_class, RESOLUTION_TARGETS["standard"])
