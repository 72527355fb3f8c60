"""Events the hotline publishes: help requests taken by operators (or Open311), follow-ups, callbacks."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field, TypeAdapter

from .base import Event, Model

HELP_REQUESTED_TOPIC = "hotline.help-requested.v1"
CASE_EVENTS_TOPIC = "hotline.case-events.v1"


class HouseholdStatus(StrEnum):
    DIBAO = "dibao"  # 低保
    TEKUN = "tekun"  # 特困
    LOW_INCOME = "low_income"  # 低收入家庭
    EDGE = "edge"  # 边缘户
    RELAPSE_RISK = "relapse_risk"  # 已脱贫但有返贫风险
    NONE = "none"
    UNKNOWN = "unknown"


class SpecialGroup(StrEnum):
    ELDERLY_ALONE = "elderly_alone"  # 独居/留守老年人
    ORPHAN = "orphan"  # 孤儿
    UNSUPPORTED_CHILD = "unsupported_child"  # 事实无人抚养儿童
    LEFT_BEHIND_CHILD = "left_behind_child"  # 农村留守儿童
    HOMELESS = "homeless"  # 流浪乞讨人员
    DISABLED = "disabled"  # 残疾人
    MENTAL_DISORDER = "mental_disorder"  # 精神障碍患者
    COVID_HOSPITALISED = "covid_hospitalised"  # 新冠确诊住院
    UNEMPLOYED_UNINSURED = "unemployed_uninsured"  # 未参保失业人员
    DISASTER_VICTIM = "disaster_victim"  # 受灾群众
    STRANDED = "stranded"  # 滞留农民工/学生


class Urgency(StrEnum):
    NORMAL = "normal"
    URGENT = "urgent"
    EMERGENCY = "emergency"


class Caller(Model):
    name: str
    phone: str
    id_card: str | None = None
    hukou_district: str | None = None  # household-registration district code
    # The caller agreed, on the call, to texts about the case (its number and handler, its outcome; P6.2).
    consents_to_texts: bool = False


class Place(Model):
    """Where the hardship happened: its district's departments act (P5.2d)."""

    district: str
    township: str | None = None
    address: str | None = None
    latitude: float | None = None
    longitude: float | None = None


class WarmTransfer(Model):
    to: Literal["110", "119", "120"]
    at: AwareDatetime


class Outreach(Model):
    """Why a proactive case was opened without a call (P2.3 主动发现): the discovery rule and its finding."""

    proposal_id: str  # the finding's natural id: one proposal never opens two cases
    rule_id: str
    provisions: tuple[str, ...] = ()
    household: str  # the registry recipient id or the care register entry the finding is about


class HelpRequested(Event):
    """A call (or Open311 request) accepted at the one door (P6.2, P2.3)."""

    TOPIC: ClassVar[str] = HELP_REQUESTED_TOPIC
    type: Literal["hotline.help_requested"] = "hotline.help_requested"

    received_at: AwareDatetime
    channel: Literal["phone", "open311", "outreach"] = "phone"
    operator_id: str
    caller: Caller
    place: Place
    needs: tuple[str, ...] = Field(min_length=1)
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN
    special_groups: tuple[SpecialGroup, ...] = ()
    months_without_income: int | None = Field(default=None, ge=0)
    urgency: Urgency = Urgency.NORMAL
    emergency: bool = False
    emergency_reasons: tuple[str, ...] = ()
    description: str = Field(default="", max_length=4000)
    warm_transfer: WarmTransfer | None = None
    # Typed Open311-style attribute values of the needs (see contracts/catalogue.py), by attribute code.
    attributes: dict[str, str | float | list[str]] = Field(default_factory=dict)
    # "proactive": opened by a discovery rule, not by a caller (P2.3 未诉先办); older records are calls.
    origin: Literal["call", "proactive"] = "call"
    outreach: Outreach | None = None


class FollowUpAttached(Event):
    """A repeat call attached to an open case instead of opening a new one (并单 at intake)."""

    TOPIC: ClassVar[str] = CASE_EVENTS_TOPIC
    type: Literal["hotline.follow_up_attached"] = "hotline.follow_up_attached"
    operator_id: str
    note: str = Field(default="", max_length=4000)
    received_at: AwareDatetime


class WarmTransferRecorded(Event):
    """The operator handed a life-safety call to 110/119/120 and stayed on the line (P2.2)."""

    TOPIC: ClassVar[str] = CASE_EVENTS_TOPIC
    type: Literal["hotline.warm_transfer_recorded"] = "hotline.warm_transfer_recorded"
    operator_id: str
    transfer: WarmTransfer
    note: str = Field(default="", max_length=4000)


class CallbackRecorded(Event):
    """The operator's callback after resolution (回访) with the caller's satisfaction."""

    TOPIC: ClassVar[str] = CASE_EVENTS_TOPIC
    type: Literal["hotline.callback_recorded"] = "hotline.callback_recorded"
    operator_id: str
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    note: str = Field(default="", max_length=4000)


class CaseReopened(Event):
    """A dissatisfied callback reopens the case."""

    TOPIC: ClassVar[str] = CASE_EVENTS_TOPIC
    type: Literal["hotline.case_reopened"] = "hotline.case_reopened"
    operator_id: str
    reason: str


HotlineCaseEvent = Annotated[
    FollowUpAttached | WarmTransferRecorded | CallbackRecorded | CaseReopened, Field(discriminator="type")
]
hotline_case_event = TypeAdapter(HotlineCaseEvent)
