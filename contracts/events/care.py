"""Events of the care register (relief): visits to special-group members that fell due without a record
(P2.2, P5.3), and outreach proposed without a call (P2.3 主动发现, 未诉先办).

No hotline case exists for these yet, so `case_id` (the partition key) is the register entry's id for a
missed visit and the proposal's id for an outreach proposal: one person's events stay in order.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, ClassVar, Literal

from pydantic import Field, TypeAdapter

from .base import Event
from .hotline import HouseholdStatus, Place, SpecialGroup

CARE_EVENTS_TOPIC = "relief.care-events.v1"


class VisitMissed(Event):
    """A register entry's visit came due and no visit was recorded by the end of that day (P2.2, P5.3).
    Published once per (entry, due day); consumers dedupe on `entry_id` and `due_on`."""

    TOPIC: ClassVar[str] = CARE_EVENTS_TOPIC
    type: Literal["care.visit_missed"] = "care.visit_missed"
    entry_id: str
    district: str
    department: str = "civil_affairs"  # the department the responsible worker answers to
    worker: str  # the responsible worker's account id
    worker_shown: str | None = None  # "显示名（账号）"
    groups: tuple[str, ...]
    due_on: date
    last_visit_on: date | None = None
    rule_id: str  # the visit-schedule rule that set the due day, e.g. "V-P2.2-ELDERLY-ALONE"
    provisions: tuple[str, ...] = ()


class OutreachProposed(Event):
    """A discovery rule found someone who may need help without their calling (P2.3): the hotline files
    it through its intake as a proactive case, once per `proposal_id`."""

    TOPIC: ClassVar[str] = CARE_EVENTS_TOPIC
    type: Literal["care.outreach_proposed"] = "care.outreach_proposed"
    proposal_id: str  # natural: the same finding never proposes twice
    rule_id: str  # the discovery rule, e.g. "D-P2.3-DROPPED-FROM-DIBAO"
    provisions: tuple[str, ...]
    household: str  # who: the registry recipient id or the register entry id
    name: str = ""  # the person's name as the registry or the register holds it
    place: Place
    needs: tuple[str, ...] = Field(min_length=1)
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN
    special_groups: tuple[SpecialGroup, ...] = ()
    description: str = Field(default="", max_length=4000)
    worker: str | None = None  # the responsible worker, when a register entry has one


CareEvent = Annotated[VisitMissed | OutreachProposed, Field(discriminator="type")]
care_event: TypeAdapter[CareEvent] = TypeAdapter(CareEvent)
