"""The hotline's request and response bodies (operator API and Open311), validated field by field.

Every validator's message reads "中文原因 | English reason"; common.errors turns a failed request into a
422 listing each bad field with reason_zh and reason_en. Nothing half-valid goes further. Checks that
involve two fields are field validators reading the fields declared before them (`info.data`), never
model validators: pydantic runs those only once every field passed, so their errors would come in a
second round after the operator fixed the first.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from contracts.catalogue import service_codes, validate_attributes
from contracts.codes import is_district
from contracts.events.base import CASE_ID_PATTERN
from contracts.events.hotline import HelpRequested, HouseholdStatus, SpecialGroup, Urgency
from contracts.validation import RecordedTime, normalise_id_card, normalise_phone
from services.hotline.domain.search import MAX_PAGE_SIZE
from services.hotline.domain.status import LABELS, CaseStatus

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
    consents_to_texts: bool = False  # the caller agreed, on the call, to texts about the case

    @field_validator("name", mode="before")
    @classmethod
    def _name_given(cls, v: Any) -> Any:
        if isinstance(v, str) and not v.strip():
            raise ValueError("必填：来电人姓名 | required: the caller's name")
        return v

    @field_validator("phone")
    @classmethod
    def _phone(cls, v: str) -> str:
        if not v:
            raise ValueError("必填：联系电话（用于回访） | required: a phone number (for the callback)")
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
    longitude: float | None = Field(default=None, ge=-180, le=180, validate_default=True)

    @field_validator("district")
    @classmethod
    def _district(cls, v: str) -> str:
        return check_district(v) or v

    @field_validator("longitude")
    @classmethod
    def _both_coordinates(cls, v: float | None, info: ValidationInfo) -> float | None:
        if "latitude" in info.data and (info.data["latitude"] is None) != (v is None):  # a bad latitude says so itself
            raise ValueError("经纬度须同时填写 | latitude and longitude go together")
        return v


class WarmTransferIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Literal["110", "119", "120"]
    at: RecordedTime | None = None  # default: now
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
    # After needs and months_without_income: its check reads them (and runs when it is left out, too).
    attributes: dict[str, Any] = Field(default_factory=dict, validate_default=True)
    warm_transfer: WarmTransferIn | None = None

    @field_validator("needs")
    @classmethod
    def _needs(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in service_codes()]
        if unknown:
            raise ValueError(f"服务目录中没有：{', '.join(unknown)} | unknown service code: {', '.join(unknown)}")
        return list(dict.fromkeys(v))

    @field_validator("attributes")
    @classmethod
    def _attributes(cls, v: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        """The needs' own attributes (a required one missing, a bad value, an unknown code), reported with
        every other field's error: each under `attributes.<code>`."""
        if "needs" not in info.data:  # the needs are wrong themselves: their attributes are unknown
            return v
        months = info.data.get("months_without_income")
        _, errors = _typed_attributes(info.data["needs"], v, months)
        if "months_without_income" not in info.data:  # given, but refused on its own: not missing too
            errors.pop("months_without_income", None)
        if errors:
            raise ValidationError.from_exception_data(
                "attributes",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("value_error", "{reason}", {"reason": reason}),
                        loc=(code,),
                        input=v.get(code),
                    )
                    for code, reason in errors.items()
                ],
            )
        return v

    def typed_attributes(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The needs' attributes, typed, and errors by attribute code (none once the body validated)."""
        return _typed_attributes(self.needs, self.attributes, self.months_without_income)


def _typed_attributes(
    needs: list[str], attributes: dict[str, Any], months_without_income: int | None
) -> tuple[dict[str, Any], dict[str, str]]:
    submitted = dict(attributes)
    if months_without_income is not None:
        submitted.setdefault("months_without_income", months_without_income)
    return validate_attributes(needs, submitted, include_common=False)


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


class CaseSearchIn(BaseModel):
    """The filters of a case search (query parameters), combinable; each given must hold."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    case_id: str | None = Field(default=None, max_length=18, description="a case number, or its beginning")
    phone: str | None = Field(default=None, description="exact (matched by its keyed hash)")
    id_card: str | None = Field(default=None, description="exact (matched by its keyed hash)")
    name: str | None = Field(default=None, min_length=1, max_length=50, description="part of the caller's name")
    address: str | None = Field(default=None, min_length=2, max_length=100, description="part of the address")
    district: str | None = None
    need: list[str] = Field(default_factory=list, max_length=10, description="service codes (any of them)")
    status: list[str] = Field(default_factory=list, max_length=10, description="caller-facing statuses (any)")
    emergency: bool | None = None
    received_from: date | None = Field(default=None, description="first day, Chongqing time (YYYY-MM-DD)")
    received_to: date | None = Field(default=None, description="last day, included")
    reason: str = Field(min_length=2, max_length=200, description="why personal data is read (audited)")
    page: int = Field(default=1, ge=1, le=10_000)
    page_size: int = Field(default=20, ge=1, le=MAX_PAGE_SIZE)

    @field_validator("case_id")
    @classmethod
    def _case_id(cls, v: str | None) -> str | None:
        if not v:
            return None
        v = v.upper()
        if not re.fullmatch(r"CQ(-\d{0,8}(-\d{0,6})?)?", v) or (len(v) == 18 and not re.fullmatch(CASE_ID, v)):
            raise ValueError(
                f"案件编号格式应为 CQ-YYYYMMDD-NNNNNN（可只填开头）：{v} | a case number reads CQ-YYYYMMDD-NNNNNN "
                f"(or its beginning): {v}"
            )
        return v

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
        return check_district(v or None)

    @field_validator("need")
    @classmethod
    def _needs(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in service_codes()]
        if unknown:
            raise ValueError(f"服务目录中没有：{', '.join(unknown)} | unknown service code: {', '.join(unknown)}")
        return v

    @field_validator("status")
    @classmethod
    def _statuses(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in LABELS]
        if unknown:
            known = ", ".join(LABELS)
            named = ", ".join(unknown)
            raise ValueError(f"没有这种状态：{named}（可选：{known}） | unknown status: {named} ({known})")
        return v

    @field_validator("received_to")
    @classmethod
    def _range(cls, v: date | None, info: ValidationInfo) -> date | None:
        first = info.data.get("received_from")
        if v and first and v < first:
            raise ValueError("结束日期早于开始日期 | the last day is before the first day")
        return v


class CaseRow(BaseModel):
    """One case in a search result or worklist: no personal data but the caller's masked name and phone."""

    case_id: str
    received_at: datetime
    caller_name: str  # masked
    phone_masked: str
    district: str
    district_name_zh: str
    district_name_en: str
    needs: list[str]
    status: str
    label_zh: str
    label_en: str
    emergency: bool


class CaseSearchOut(BaseModel):
    page: int
    page_size: int
    has_more: bool
    results: list[CaseRow]


class CallbackDueRow(CaseRow):
    resolved_at: datetime
    due_at: datetime
    overdue: bool


class CallbacksDueOut(BaseModel):
    due_hours: float  # H-CALLBACK-DUE (P6.2): the callback is due this long after the resolution
    rule_id: str
    page: int
    page_size: int
    has_more: bool
    results: list[CallbackDueRow]


class FollowUpIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    note: str = Field(min_length=1, max_length=4000)
    received_at: RecordedTime | None = None  # default: now


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


class ReasonOut(BaseModel):
    """Why a call is an emergency, for the operator (the help request records `emergency_reasons`)."""

    rule_id: str
    text_zh: str
    text_en: str


class RecordedPlace(BaseModel):
    district: str
    township: str | None
    address: str | None


class RecordedCall(BaseModel):
    """What the case holds, for the operator to read back to the caller: the phone masked, no ID-card."""

    caller_name: str
    phone_masked: str
    consents_to_texts: bool = False
    place: RecordedPlace
    needs: list[str]
    household_status: str
    special_groups: list[str]
    urgency: str
    description: str
    attributes: dict[str, str | float | list[str]]


class Accepted(BaseModel):
    case_id: str
    received_at: datetime
    published: bool
    replayed: bool = False  # the Idempotency-Key was seen before: this is the first submission's case
    emergency: bool
    emergency_reasons: list[str]
    reasons: list[ReasonOut] = []  # the same, in Chinese and English
    suggested_transfer: str | None
    possible_duplicates: list[MatchOut]
    recorded: RecordedCall | None = None  # what was recorded (the first submission's, when replayed)


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
