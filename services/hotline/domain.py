"""Pure intake rules: case numbers and turning an operator's form into a help request."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

CHONGQING_TZ = ZoneInfo("Asia/Shanghai")


def case_day(at: datetime) -> str:
    """The local (Chongqing) calendar day a case number is counted in, as YYYYMMDD."""
    return at.astimezone(CHONGQING_TZ).strftime("%Y%m%d")


def format_case_number(day: str, seq: int) -> str:
    """Human-readable, unique, date-sortable: `CQ-20260215-000123`."""
    if not 0 < seq <= 999_999:
        raise ValueError(f"daily case sequence out of range: {seq}")
    return f"CQ-{day}-{seq:06d}"
