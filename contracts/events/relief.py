"""Events relief publishes: temporary-assistance and subsidy grants through their lifecycle (P5.2, P6.1)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import Field, TypeAdapter

from .base import Event

GRANT_EVENTS_TOPIC = "relief.grant-events.v1"
HUKOU_NOTICE_TOPIC = "relief.hukou-district-notified.v1"


class _GrantEvent(Event):
    TOPIC: ClassVar[str] = GRANT_EVENTS_TOPIC
    grant_id: str
    rule_id: str  # e.g. "P5.2a"
    district: str  # the paying district: where the hardship happened (P5.2d)
    actor: str = "relief"


class GrantProposed(_GrantEvent):
    type: Literal["grant.proposed"] = "grant.proposed"
    amount_yuan: Decimal
    period: str  # e.g. "2026-02" for a monthly payment, "once" for a one-time grant
    reasons: tuple[str, ...] = ()
    facts: dict[str, Any] = Field(default_factory=dict)
    needs_second_approval: bool = False


class GrantApproved(_GrantEvent):
    type: Literal["grant.approved"] = "grant.approved"
    amount_yuan: Decimal
    approved_on: date


class GrantRejected(_GrantEvent):
    type: Literal["grant.rejected"] = "grant.rejected"
    reason: str


class GrantPaid(_GrantEvent):
    type: Literal["grant.paid"] = "grant.paid"
    amount_yuan: Decimal
    payment_reference: str
    approved_on: date | None = None


class GrantStopped(_GrantEvent):
    type: Literal["grant.stopped"] = "grant.stopped"
    reason: str


class HukouDistrictNotified(Event):
    """The place of hardship paid; the household's registration district is told (P5.2d)."""

    TOPIC: ClassVar[str] = HUKOU_NOTICE_TOPIC
    type: Literal["relief.hukou_notified"] = "relief.hukou_notified"
    paying_district: str
    hukou_district: str
    grant_id: str
    rule_id: str


GrantEvent = Annotated[
    GrantProposed | GrantApproved | GrantRejected | GrantPaid | GrantStopped, Field(discriminator="type")
]
grant_event: TypeAdapter[GrantEvent] = TypeAdapter(GrantEvent)
