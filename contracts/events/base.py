"""The base every event derives from: identity, time, the case it concerns, a schema version."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import ClassVar
from uuid import UUID, uuid4
from zoneinfo import ZoneInfo

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

CASE_ID_PATTERN = r"^CQ-\d{8}-\d{6}$"
# The city's local time: case numbers, working days and the times people read are in it.
BUSINESS_TZ = ZoneInfo("Asia/Shanghai")
_CASE_DAY = re.compile(r"^CQ-(\d{4})(\d{2})(\d{2})-\d{6}")


def case_number_day(key: str) -> date | None:
    """The local day a case number was given (`CQ-20260215-000123`, or a key starting with one, such as
    `CQ-20260215-000123:grant-1`): the case was received that day. None for any other key."""
    match = _CASE_DAY.match(key)
    if match is None:
        return None
    try:
        return date(*(int(part) for part in match.groups()))
    except ValueError:
        return None


def utcnow() -> datetime:
    return datetime.now(UTC)


class Model(BaseModel):
    """Frozen, strict value object used inside events."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Event(Model):
    """An immutable fact, named in the past tense, published on `TOPIC` keyed by `case_id`."""

    TOPIC: ClassVar[str]

    event_id: UUID = Field(default_factory=uuid4)
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    case_id: str
    schema_version: int = 1
    correlation_id: str | None = None

    @property
    def key(self) -> bytes:
        """Partition key: one case's events stay in order."""
        return self.case_id.encode()
