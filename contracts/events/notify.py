"""Events notify publishes: SLA warnings, breaches and escalations (P6.2, P2.2, P4.1)."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from .base import Event

SLA_EVENTS_TOPIC = "notify.sla-events.v1"

Clock = Literal["citizen", "department"]
Target = Literal["sign_for", "first_contact", "resolution", "payment"]


class _SlaEvent(Event):
    TOPIC: ClassVar[str] = SLA_EVENTS_TOPIC
    clock: Clock
    target: Target
    department: str | None = None
    district: str
    due_at: AwareDatetime
    sla_class: str
    # Which rule set the deadline and the provisions it cites (P6.3); which clock (e.g. "citizen",
    # "dept:civil_affairs:1", "payment:<grant id>"). Optional, so older producers stay valid.
    rule_id: str | None = None
    provisions: tuple[str, ...] = ()
    clock_key: str | None = None


class SlaWarningRaised(_SlaEvent):
    type: Literal["sla.warning"] = "sla.warning"
    share_elapsed: float


class SlaBreached(_SlaEvent):
    type: Literal["sla.breached"] = "sla.breached"


class SlaEscalated(_SlaEvent):
    type: Literal["sla.escalated"] = "sla.escalated"
    tier: Literal["department_head", "district_coordinator", "city_coordinator"]
    recipient: str | None = None  # e.g. "coordinator:500103", "coordinator:city"


SlaEvent = Annotated[SlaWarningRaised | SlaBreached | SlaEscalated, Field(discriminator="type")]
sla_event: TypeAdapter[SlaEvent] = TypeAdapter(SlaEvent)
