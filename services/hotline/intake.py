"""Taking a call, shared by the operator API and Open311: triage, case number, outbox, duplicates."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends

from common.app import RuntimeDep
from contracts.events.hotline import Caller, HelpRequested, HouseholdStatus, Place, SpecialGroup, Urgency, WarmTransfer
from services.hotline.domain import Triage, caller_keys, triage
from services.hotline.outbox import Outbox, Publisher
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore


@dataclass
class Hotline:
    """What the hotline's routes and handlers share, built in the lifespan (app.py)."""

    store: HotlineStore
    outbox: Outbox
    publisher: Publisher
    settings: Settings

    @property
    def pepper(self) -> str:
        return self.settings.lookup_pepper.get_secret_value()


def get_hotline(runtime: RuntimeDep) -> Hotline:
    return runtime.store


HotlineDep = Annotated[Hotline, Depends(get_hotline)]


@dataclass(frozen=True)
class Taken:
    event: HelpRequested
    verdict: Triage
    duplicates: list[dict[str, Any]]
    published: bool


async def take_help_request(
    hotline: Hotline,
    *,
    operator_id: str,
    channel: str,
    caller: Caller,
    place: Place,
    needs: list[str],
    household_status: HouseholdStatus = HouseholdStatus.UNKNOWN,
    special_groups: list[SpecialGroup] | tuple[SpecialGroup, ...] = (),
    urgency: Urgency = Urgency.NORMAL,
    description: str = "",
    attributes: dict[str, Any] | None = None,
    warm_transfer: WarmTransfer | None = None,
) -> Taken:
    """Triage the call, give it a case number, store it safely and publish it (or leave it to the relay).

    Inputs are already validated. Returns the event, the triage verdict, open cases of the same caller
    or household found before this one was stored, and whether Kafka acknowledged it at once."""
    attributes = attributes or {}
    now = datetime.now(UTC)
    verdict = triage(needs, description, urgency is Urgency.EMERGENCY)
    months = attributes.get("months_without_income")
    case_id = await hotline.store.next_case_number(now)
    event = HelpRequested(
        case_id=case_id, correlation_id=case_id, received_at=now, channel=channel, operator_id=operator_id,
        caller=caller, place=place, needs=tuple(needs), household_status=household_status,
        special_groups=tuple(special_groups), months_without_income=int(months) if months is not None else None,
        urgency=Urgency.EMERGENCY if verdict.emergency else urgency, emergency=verdict.emergency,
        emergency_reasons=verdict.reasons, description=description, attributes=attributes,
        warm_transfer=warm_transfer,
    )
    keys = caller_keys(hotline.pepper, phone=caller.phone, id_card=caller.id_card, district=place.district,
                       address=place.address)
    duplicates = await hotline.store.open_cases_matching(keys)
    published = await hotline.publisher.accept(event, intake=hotline.store.intake_document(event, keys))
    return Taken(event=event, verdict=verdict, duplicates=duplicates, published=published)
