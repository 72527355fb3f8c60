"""The hotline's request and response bodies (operator API and Open311), validated field by field.

Every validator's message reads "中文原因 | English reason"; common.errors turns a failed request into a
422 listing each bad field with reason_zh and reason_en. Nothing half-valid goes further.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.catalogue import service_codes, validate_attributes
from contracts.codes import is_district
from contracts.events.base import CASE_ID_PATTERN
from contracts.events.hotline import HelpRequested, HouseholdStatus, SpecialGroup, Urgency
from contracts.validation import normalise_id_card, normalise_phone
from services.hotline.domain.status import CaseStatus

CASE_ID = CASE_ID_PATTERN


def check_district(value: str | None) -> str | None:
    if value is not None and not is_district(value):
        raise ValueError(f"区县代码不存在：{value} | unknown district code: {value}")
    return value


class CallerIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    name: str = Field(min_length=1, max_length=50)
    phone: str
    id_card: str | None = None
    hukou_district: str | None = None  # household-registration district code

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        return normalise_phone(v)

    @field_validator("hukou_district")
    @classmethod
    def _hukou(cls, v: str | None) -> str | None:
        return check_district(v)

    @field_validator("id_card")
    @classmethod
    def _id_card(cls, v: str | None) -> str | None:
        return normalise_id_card(v) if v else None


class PlaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    district: str
    township: str | None = Field(default=None, max_length=100)
    address: str | None = Field(default=None, max_length=300)
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("district")
    @classmethod
    def _district(cls, v: str) -> str:
        return check_district(v) or v

    @model_validator(mode="after")
    def _both_coordinates(self) -> PlaceIn:
        if (self.latitude is None) != (self.longitude is None):
            raise ValueError("经纬度须同时填写 | latitude and longitude go together")
        return self


class WarmTransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Literal["110", "119", "120"]
    at: AwareDatetime | None = None  # default: now
    note: str = Field(default="", max_length=1000)


class HelpRequestIn(BaseModel):
    """What the operator enters for a call."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    caller: CallerIn
    place: PlaceIn
    needs: list[str] = Field(min_length=1, max_length=10)
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN
    special_groups: list[SpecialGroup] = []
    months_without_income: int | None = Field(default=None, ge=0, le=600)
    urgency: Urgency = Urgency.NORMAL
    description: str = Field(default="", max_length=4000)
    attributes: dict[str, Any] = {}
    warm_transfer: WarmTransferIn | None = None

    @field_validator("needs")
    @classmethod
    def _needs(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in service_codes()]
        if unknown:
            raise ValueError(f"服务目录中没有：{', '.join(unknown)} | unknown service code: {', '.join(unknown)}")
        return list(dict.fromkeys(v))

    def typed_attributes(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The needs' attributes, typed, and errors by attribute code (checked in the route, see api.py)."""
        submitted = dict(self.attributes)
        if self.months_without_income is not None:
            submitted.setdefault("months_without_income", self.months_without_income)
        return validate_attributes(self.needs, submitted, include_common=False)


class MatchQuery(BaseModel):
    """What identifies a caller: any of phone, ID-card, household (district + address)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    phone: str | None = None
    id_card: str | None = None
    district: str | None = None
    address: str | None = Field(default=None, max_length=300)
    reason: str = Field(default="受理时查重 | duplicate check at intake", min_length=2, max_length=200)

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str | None) -> str | None:
        return normalise_phone(v) if v else None

    @field_validator("id_card")
    @classmethod
    def _id_card(cls, v: str | None) -> str | None:
        return normalise_id_card(v) if v else None

    @field_validator("district")
    @classmethod
    def _district(cls, v: str | None) -> str | None:
        return check_district(v)


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str = Field(min_length=1, max_length=4000)
    received_at: AwareDatetime | None = None


class CallbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    note: str = Field(default="", max_length=4000)


class MatchOut(BaseModel):
    case_id: str
    status: str
    label_zh: str
    label_en: str
    emergency: bool
    needs: list[str]
    district: str
    received_at: datetime
    caller_name: str  # masked
    matched_on: list[str]


class Accepted(BaseModel):
    case_id: str
    received_at: datetime
    published: bool
    replayed: bool = False  # the Idempotency-Key was seen before: this is the first submission's case
    emergency: bool
    emergency_reasons: list[str]
    suggested_transfer: str | None
    possible_duplicates: list[MatchOut]


class CaseOut(BaseModel):
    """A case with the caller's personal data (an audited read)."""

    case_id: str
    request: HelpRequested
    status: CaseStatus


class AuditEntryOut(BaseModel):
    """One read of a case's personal data: who, when, why."""

    at: datetime
    actor: str
    role: str
    district: str | None
    action: str
    reason: str
    case_ids: list[str]
    query: dict[str, str]


class FollowUpOut(BaseModel):
    case_id: str  # the case it went to (a merged child's follow-up goes to the surviving case)
    event_id: str
    published: bool
    follow_ups: int | None


class WarmTransferOut(BaseModel):
    case_id: str
    to: Literal["110", "119", "120"]
    at: datetime
    published: bool


class CallbackOut(BaseModel):
    case_id: str
    satisfaction: Literal["satisfied", "basically_satisfied", "dissatisfied"]
    reopened: bool
    published: bool
    status: str | None


# ------------------------------------------------------------------ Open311 GeoReport v2 (field names as the spec's)


class Open311Service(BaseModel):
    service_code: str
    service_name: str | None
    description: str | None
    metadata: bool
    type: Literal["realtime", "batch", "blackbox"]
    keywords: str
    group: str | None


class Open311Value(BaseModel):
    key: str
    name: str | None


class Open311Attribute(BaseModel):
    variable: bool
    code: str
    datatype: str
    required: bool
    datatype_description: str | None
    order: int
    description: str | None
    values: list[Open311Value] | None = Field(default=None, exclude_if=lambda v: v is None)  # list datatypes only


class Open311ServiceDefinition(BaseModel):
    service_code: str
    attributes: list[Open311Attribute]


class Open311Request(BaseModel):
    """A public view of a case: no name, phone, ID-card or street address; the description masked."""

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str | None
    service_code: str
    description: str
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str | None  # w3 format in Chongqing time
    updated_datetime: str | None
    expected_datetime: str | None
    address: str
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class Open311Created(BaseModel):
    service_request_id: str
    service_notice: str
    account_id: str | None


class Open311Error(BaseModel):
    code: int
    description: str
