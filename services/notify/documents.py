"""What notify stores beside the case aggregate (`clockwork.NotifyCase`), as typed models: the delivery
record of each notification, and each SLA event fired. The store reads and writes these; the API shapes
its answers from them (`schemas.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field

# skipped: nothing was to be sent (a caller who did not consent to texts, P6.2); the attempt says why
DeliveryStatus = Literal["pending", "sent", "failed", "skipped"]


class _Document(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SentAttempt(_Document):
    at: datetime
    ok: Literal[True] = True
    channel: str
    reference: str | None = None  # the provider's id of the message, if it gave one


class FailedAttempt(_Document):
    at: datetime
    ok: Literal[False] = False
    channel: str
    error: str


class SkippedAttempt(_Document):
    """No delivery was tried, and none will be: `skipped` says why (e.g. "no consent", P6.2)."""

    at: datetime
    ok: Literal[False] = False
    channel: str = "none"
    skipped: str


Attempt = SentAttempt | FailedAttempt | SkippedAttempt


class NotificationRecord(_Document):
    """One text or alert under its natural key (`_id`): inserted once, then every delivery attempt."""

    key: str = Field(validation_alias=AliasChoices("_id", "key"))
    case_id: str
    kind: str
    recipient: str  # a code (`caller`, `department:<dept>:<district>`, ...), never a phone number
    channel: str
    text_zh: str
    text_en: str
    params: dict[str, str] = {}  # the provider template's values (Alibaba Cloud SMS), no personal data
    event_id: str | None = None  # the event that called for it
    status: DeliveryStatus = "pending"
    attempts: list[Attempt] = []
    created_at: datetime
    sent_at: datetime | None = None

    def document(self) -> dict[str, Any]:
        return {"_id": self.key, **self.model_dump(exclude={"key"})}


class SlaEventRecord(_Document):
    """An SLA event notify published (warning, breach, escalation), kept for the case's detail view."""

    event_id: str = Field(validation_alias=AliasChoices("_id", "event_id"))
    case_id: str
    type: str
    target: str
    clock_key: str | None = None
    department: str | None = None
    district: str
    due_at: datetime
    tier: str | None = None
    rule_id: str | None = None
    fired_at: datetime
    timer_due_at: datetime

    def document(self) -> dict[str, Any]:
        return {"_id": self.event_id, **self.model_dump(exclude={"event_id"})}
