"""Events relief publishes: temporary-assistance and subsidy grants through their lifecycle (P5.2, P6.1).

Fields added after the first version all have defaults, so older consumers and older messages still fit.
"""

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
    actor: str = "relief"  # the officer's user id, or "relief" when a rule decided


class GrantProposed(_GrantEvent):
    """A rule proposed a grant, or an officer signed an amount that waits for a second officer (P5.2c)."""

    type: Literal["grant.proposed"] = "grant.proposed"
    amount_yuan: Decimal  # per period; for an amount the officer still sets: the cap, or 0 when uncapped
    period: str  # e.g. "2026-02" for a monthly payment, "once" for a one-time grant
    reasons: tuple[str, ...] = ()
    facts: dict[str, Any] = Field(default_factory=dict)
    needs_second_approval: bool = False
    schedule: Literal["monthly", "once", "review"] | None = None
    amount_to_be_decided: bool = False  # the officer sets the amount (P5.2b within cap_yuan, P5.2c)
    cap_yuan: Decimal | None = None
    to_verify: tuple[str, ...] = ()
    sla_class: str | None = None  # P5.1: the dibao review's SLA class (fast track or standard)
    review_steps: tuple[str, ...] = ()


class GrantApproved(_GrantEvent):
    type: Literal["grant.approved"] = "grant.approved"
    amount_yuan: Decimal
    approved_on: date
    approved_by: tuple[str, ...] = ()  # every officer who signed (two under the four-eyes rule)
    schedule: Literal["monthly", "once", "review"] | None = None


class GrantRejected(_GrantEvent):
    type: Literal["grant.rejected"] = "grant.rejected"
    reason: str


class GrantPaid(_GrantEvent):
    type: Literal["grant.paid"] = "grant.paid"
    amount_yuan: Decimal
    payment_reference: str
    approved_on: date | None = None
    period: str | None = None  # the period this payment covers ("2026-02", "once")


class GrantStopped(_GrantEvent):
    type: Literal["grant.stopped"] = "grant.stopped"
    reason: str
    stopped_on: date | None = None  # e.g. the day of discharge from hospital (P5.2a)


class GrantCancelled(_GrantEvent):
    """An officer withdrew a grant before anything was paid (e.g. a duplicate case)."""

    type: Literal["grant.cancelled"] = "grant.cancelled"
    reason: str


class HukouDistrictNotified(Event):
    """The place of hardship paid; the household's registration district is told (P5.2d)."""

    TOPIC: ClassVar[str] = HUKOU_NOTICE_TOPIC
    type: Literal["relief.hukou_notified"] = "relief.hukou_notified"
    paying_district: str
    hukou_district: str
    grant_id: str
    rule_id: str
    amount_yuan: Decimal | None = None


GrantEvent = Annotated[
    GrantProposed | GrantApproved | GrantRejected | GrantPaid | GrantStopped | GrantCancelled,
    Field(discriminator="type"),
]
grant_event: TypeAdapter[GrantEvent] = TypeAdapter(GrantEvent)
