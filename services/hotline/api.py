"""The operator's HTTP API (role `operator`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, status
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.app import Runtime, RuntimeDep
from common.auth import Principal, Role, require_roles
from common.errors import NotFound
from common.kafka import publish_event
from contracts.catalogue import service_codes
from contracts.codes import is_district
from contracts.events.hotline import Caller, HelpRequested, HouseholdStatus, Place, SpecialGroup, Urgency
from services.hotline.store import HotlineStore

log = structlog.get_logger("hotline.api")
PUBLISH_TIMEOUT_S = 3.0

Operator = Annotated[Principal, Depends(require_roles(Role.OPERATOR))]


def get_store(runtime: RuntimeDep) -> HotlineStore:
    return runtime.store


StoreDep = Annotated[HotlineStore, Depends(get_store)]


class PlaceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    district: str
    township: str | None = None
    address: str | None = None
    latitude: float | None = Field(default=None, ge=-90, le=90)
    longitude: float | None = Field(default=None, ge=-180, le=180)

    @field_validator("district")
    @classmethod
    def _district(cls, v: str) -> str:
        if not is_district(v):
            raise ValueError(f"区县代码不存在：{v} | unknown district code: {v}")
        return v


class HelpRequestIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    caller: Caller
    place: PlaceIn
    needs: list[str] = Field(min_length=1)
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN
    special_groups: list[SpecialGroup] = []
    urgency: Urgency = Urgency.NORMAL
    description: str = Field(default="", max_length=4000)

    @field_validator("needs")
    @classmethod
    def _needs(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in service_codes()]
        if unknown:
            raise ValueError(f"服务目录中没有：{', '.join(unknown)} | unknown service code: {', '.join(unknown)}")
        return v


class Accepted(BaseModel):
    case_id: str
    received_at: datetime
    published: bool


router = APIRouter(prefix="/api/v1", tags=["operator"])


async def try_publish(runtime: Runtime, event: HelpRequested) -> bool:
    """Publish now if Kafka answers in time; otherwise leave the event to the outbox relay."""
    if not runtime.kafka_connected.is_set():
        return False
    try:
        await asyncio.wait_for(publish_event(runtime.broker, event), timeout=PUBLISH_TIMEOUT_S)
    except Exception as exc:  # noqa: BLE001 - any failure leaves it in the outbox
        log.warning("publish failed; kept in outbox", case_id=event.case_id, error=repr(exc))
        return False
    await runtime.store.mark_published(str(event.event_id))
    return True


@router.post("/help-requests", status_code=status.HTTP_201_CREATED, response_model=Accepted)
async def take_call(body: HelpRequestIn, operator: Operator, runtime: RuntimeDep, store: StoreDep) -> Accepted:
    """Accept a call: the case number comes back at once, even while Kafka is down."""
    now = datetime.now(UTC)
    case_id = await store.next_case_number(now)
    event = HelpRequested(
        case_id=case_id,
        received_at=now,
        operator_id=operator.sub,
        caller=body.caller,
        place=Place(**body.place.model_dump()),
        needs=tuple(body.needs),
        household_status=body.household_status,
        special_groups=tuple(body.special_groups),
        urgency=body.urgency,
        emergency=body.urgency is Urgency.EMERGENCY,
        description=body.description,
    )
    await store.record_intake(event)
    published = await try_publish(runtime, event)
    log.info("help request accepted", case_id=case_id, published=published)
    return Accepted(case_id=case_id, received_at=now, published=published)


@router.get("/cases/{case_id}")
async def get_case(case_id: str, operator: Operator, store: StoreDep) -> dict[str, Any]:
    doc = await store.get_intake(case_id)
    if doc is None:
        raise NotFound(f"案件不存在：{case_id}", f"no such case: {case_id}")
    return {"case_id": case_id, "request": doc["event"]}
