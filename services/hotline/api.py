"""The operator's HTTP API (role `operator`): intake, repeat callers, follow-ups, transfers, lookup,
status and callbacks. Thin: validation in schemas.py, rules in domain/, storage in store.py/outbox.py."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Header, Path, Query, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse

from common.auth import require_roles
from common.errors import Forbidden, NotFound
from common.http_errors import field_checked
from common.principal import Principal, Role
from contracts.events import Event
from contracts.events.hotline import (
    CallbackRecorded,
    Caller,
    CaseReopened,
    FollowUpAttached,
    HelpRequested,
    Place,
    WarmTransfer,
    WarmTransferRecorded,
)
from contracts.validation import check_not_before, normalise_id_card, normalise_phone
from services.hotline.domain import caller_keys, lookup_key, mask_name, mask_phone
from services.hotline.domain.callback import decide_callback, follow_up_target
from services.hotline.domain.status import CaseStatus
from services.hotline.intake import Hotline, HotlineDep, take_help_request
from services.hotline.schemas import (
    CASE_ID,
    Accepted,
    AuditEntryOut,
    CallbackIn,
    CallbackOut,
    CaseOut,
    FollowUpIn,
    FollowUpOut,
    HelpRequestIn,
    MatchOut,
    MatchQuery,
    ReasonOut,
    RecordedCall,
    RecordedPlace,
    WarmTransferIn,
    WarmTransferOut,
)

log = structlog.get_logger("hotline.api")


Operator = Annotated[Principal, Depends(require_roles(Role.OPERATOR))]
Supervisor = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
CaseId = Annotated[str, Path(pattern=CASE_ID, description="Case number, e.g. CQ-20260215-000123")]
# IETF httpapi Idempotency-Key: one per call form; printable ASCII, as a header value must be.
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        pattern=r"^[!-~]+$",
        description="Repeating a submission with the same key returns the same case instead of opening a second one",
    ),
]
Reason = Annotated[str, Query(min_length=2, max_length=200, description="Why personal data is read (audited)")]

router = APIRouter(prefix="/api/v1", tags=["operator"])
page = APIRouter(tags=["page"])


@page.get("/", response_class=HTMLResponse, include_in_schema=False)
async def operator_page() -> str:
    return resources.files("services.hotline.static").joinpath("index.html").read_text(encoding="utf-8")


def match_out(doc: dict[str, Any]) -> MatchOut:
    state = doc.get("status", {})
    return MatchOut(
        case_id=doc["_id"],
        status=state.get("status", "received"),
        label_zh=state.get("label_zh", ""),
        label_en=state.get("label_en", ""),
        emergency=doc["emergency"],
        needs=doc["needs"],
        district=doc["district"],
        received_at=doc["received_at"],
        caller_name=mask_name(doc["event"]["caller"]["name"]),
        matched_on=doc.get("matched_on", []),
    )


def _attribute_errors(errors: dict[str, str]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("body", "attributes", code), "msg": reason, "type": "value_error"} for code, reason in errors.items()]
    )


def _not_before_received(loc: tuple[str, ...], at: datetime, doc: dict[str, Any]) -> None:
    field_checked(
        loc,
        lambda: check_not_before(at, doc["received_at"], what_zh="案件受理时间", what_en="the case was received"),
    )


async def _case(hotline: Hotline, case_id: str) -> dict[str, Any]:
    doc = await hotline.store.get_intake(case_id)
    if doc is None:
        raise NotFound(f"案件不存在：{case_id}", f"no such case: {case_id}", field="case_id")
    return doc


@router.post("/help-requests", status_code=status.HTTP_201_CREATED, response_model=Accepted)
async def take_call(
    body: HelpRequestIn, operator: Operator, hotline: HotlineDep, idempotency_key: IdempotencyKey = None
) -> Accepted:
    """Accept a call: the case number comes back at once, even while Kafka is down (then from the outbox).
    With an `Idempotency-Key` header, a repeated submission (a retry, a second press) gets the same case."""
    attributes, errors = body.typed_attributes()
    if errors:
        raise _attribute_errors(errors)
    transfer = body.warm_transfer
    taken = await take_help_request(
        hotline,
        operator_id=operator.sub,
        channel="phone",
        caller=Caller(**body.caller.model_dump()),
        place=Place(**body.place.model_dump()),
        needs=body.needs,
        household_status=body.household_status,
        special_groups=body.special_groups,
        urgency=body.urgency,
        description=body.description,
        attributes=attributes,
        warm_transfer=WarmTransfer(to=transfer.to, at=transfer.at or datetime.now(UTC)) if transfer else None,
        idempotency_key=idempotency_key,
    )
    duplicates, verdict = taken.duplicates, taken.verdict
    if duplicates:
        await hotline.store.audit_read(
            operator, action="duplicate_check", reason="intake", case_ids=[d["_id"] for d in duplicates]
        )
    event = taken.event
    log.info(
        "help request accepted",
        case_id=event.case_id,
        published=taken.published,
        emergency=verdict.emergency,
        rules=list(verdict.rule_ids),
        duplicates=len(duplicates),
        replayed=taken.replayed,
    )
    return Accepted(
        case_id=event.case_id,
        received_at=event.received_at,
        published=taken.published,
        replayed=taken.replayed,
        emergency=verdict.emergency,
        emergency_reasons=list(verdict.reasons),
        reasons=[ReasonOut(rule_id=r.rule_id, text_zh=r.text_zh, text_en=r.text_en) for r in verdict.explained],
        suggested_transfer=verdict.suggested_transfer,
        possible_duplicates=[match_out(d) for d in duplicates],
        recorded=recorded_call(event),
    )


def recorded_call(event: HelpRequested) -> RecordedCall:
    """The accepted call as the case holds it, for the operator to read back (the phone masked)."""
    place = event.place
    return RecordedCall(
        caller_name=event.caller.name,
        phone_masked=mask_phone(event.caller.phone),
        consents_to_texts=event.caller.consents_to_texts,
        place=RecordedPlace(district=place.district, township=place.township, address=place.address),
        needs=list(event.needs),
        household_status=str(event.household_status.value),
        special_groups=[str(g.value) for g in event.special_groups],
        urgency=str(event.urgency.value),
        description=event.description,
        attributes=dict(event.attributes),
    )


@router.post("/help-requests/matches", response_model=list[MatchOut])
async def find_open_cases(body: MatchQuery, operator: Operator, hotline: HotlineDep) -> list[MatchOut]:
    """While the caller speaks: open cases with the same ID-card, phone or household (并单)."""
    keys = caller_keys(
        hotline.pepper, phone=body.phone, id_card=body.id_card, district=body.district, address=body.address
    )
    found = await hotline.store.open_cases_matching(keys)
    await hotline.store.audit_read(
        operator,
        action="duplicate_check",
        reason=body.reason,
        case_ids=[d["_id"] for d in found],
        query={k: v[:12] for k, v in keys.items()},
    )
    return [match_out(d) for d in found]


@router.get("/cases", response_model=list[MatchOut])
async def find_cases(
    operator: Operator, hotline: HotlineDep, reason: Reason, phone: str | None = None, id_card: str | None = None
) -> list[MatchOut]:
    """Cases of a caller by phone or ID-card number (operators only; every search is audited)."""
    try:
        kind, value = ("id_card", normalise_id_card(id_card)) if id_card else ("phone", normalise_phone(phone or ""))
    except ValueError as exc:
        raise RequestValidationError(
            [{"loc": ("query", "id_card" if id_card else "phone"), "msg": str(exc), "type": "value_error"}]
        ) from None
    key = lookup_key(hotline.pepper, kind, value)
    found = await hotline.store.cases_by_key(kind, key)
    await hotline.store.audit_read(
        operator, action=f"lookup_by_{kind}", reason=reason, case_ids=[d["_id"] for d in found], query={kind: key[:12]}
    )
    return [match_out(d) for d in found]


@router.get("/cases/recent", response_model=list[MatchOut])
async def recent_cases(
    operator: Operator, hotline: HotlineDep, open_only: bool = False, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> list[MatchOut]:
    """The latest cases, emergencies first (caller names masked)."""
    docs = await hotline.store.recent(limit=limit, open_only=open_only)
    return sorted((match_out(d) for d in docs), key=lambda m: not m.emergency)


@router.get("/cases/{case_id}", response_model=CaseOut)
async def get_case(case_id: CaseId, reason: Reason, operator: Operator, hotline: HotlineDep) -> CaseOut:
    """The full case with the caller's personal data; the read is audited (who, when, why)."""
    doc = await _case(hotline, case_id)
    await hotline.store.audit_read(operator, action="read_case", reason=reason, case_ids=[case_id])
    return CaseOut(
        case_id=case_id,
        request=HelpRequested.model_validate(doc["event"]),
        status=CaseStatus.model_validate(doc["status"]),
    )


@router.get("/cases/{case_id}/status", response_model=CaseStatus)
async def case_status(case_id: CaseId, operator: Operator, hotline: HotlineDep) -> CaseStatus:
    """What to tell the caller: received, dispatched to whom, signed for, in progress, resolved, closed."""
    doc = await _case(hotline, case_id)
    return CaseStatus.model_validate(doc["status"])


@router.get("/cases/{case_id}/audit", response_model=list[AuditEntryOut])
async def case_audit(case_id: CaseId, supervisor: Supervisor, hotline: HotlineDep) -> list[AuditEntryOut]:
    """Who read this case's personal data, when and why (a district coordinator: their district's cases)."""
    doc = await _case(hotline, case_id)
    if not supervisor.can_see_district(doc["district"]):
        raise Forbidden("无权查看其他区县的案件", "this case is another district's", field="case_id")
    return [AuditEntryOut.model_validate(entry) for entry in await hotline.store.audit_trail(case_id)]


async def _emit(hotline: Hotline, event: Event) -> bool:
    published = await hotline.publisher.accept(event)
    await hotline.store.record_event(event)
    return published


@router.post("/cases/{case_id}/follow-ups", status_code=status.HTTP_201_CREATED, response_model=FollowUpOut)
async def attach_follow_up(case_id: CaseId, body: FollowUpIn, operator: Operator, hotline: HotlineDep) -> FollowUpOut:
    """A repeat call about an open case: attached to it instead of opening a new one (并单)."""
    doc = await _case(hotline, case_id)
    target = follow_up_target(case_id, doc["status"]["status"], doc["status"].get("merged_into"))
    if target != case_id:
        await _case(hotline, target)
    if body.received_at is not None:
        _not_before_received(("body", "received_at"), body.received_at, doc)
    event = FollowUpAttached(
        case_id=target,
        correlation_id=target,
        operator_id=operator.sub,
        note=body.note,
        received_at=body.received_at or datetime.now(UTC),
    )
    published = await _emit(hotline, event)
    state = await hotline.store.refresh_status(target)
    return FollowUpOut(
        case_id=target,
        event_id=str(event.event_id),
        published=published,
        follow_ups=state.follow_ups if state else None,
    )


@router.post("/cases/{case_id}/warm-transfers", status_code=status.HTTP_201_CREATED, response_model=WarmTransferOut)
async def record_warm_transfer(
    case_id: CaseId, body: WarmTransferIn, operator: Operator, hotline: HotlineDep
) -> WarmTransferOut:
    """The operator handed the call to 110/119/120 and stayed on the line; the time is recorded (P2.2)."""
    doc = await _case(hotline, case_id)
    if body.at is not None:
        _not_before_received(("body", "at"), body.at, doc)
    transfer = WarmTransfer(to=body.to, at=body.at or datetime.now(UTC))
    event = WarmTransferRecorded(
        case_id=case_id, correlation_id=case_id, operator_id=operator.sub, transfer=transfer, note=body.note
    )
    published = await _emit(hotline, event)
    await hotline.store.refresh_status(case_id)
    return WarmTransferOut(case_id=case_id, to=transfer.to, at=transfer.at, published=published)


@router.post("/cases/{case_id}/callbacks", status_code=status.HTTP_201_CREATED, response_model=CallbackOut)
async def record_callback(case_id: CaseId, body: CallbackIn, operator: Operator, hotline: HotlineDep) -> CallbackOut:
    """回访 after resolution, once per resolution; a dissatisfied caller reopens the case (CaseReopened, P6.2)."""
    # Decided on the status projected from every event kept now (a stored one may predate `called_back`).
    current = await hotline.store.refresh_status(case_id)
    if current is None:
        raise NotFound(f"案件不存在：{case_id}", f"no such case: {case_id}", field="case_id")
    outcome = decide_callback(current.status, body.satisfaction, called_back=current.called_back)
    callback = CallbackRecorded(
        case_id=case_id,
        correlation_id=case_id,
        operator_id=operator.sub,
        satisfaction=body.satisfaction,
        note=body.note,
    )
    published = await _emit(hotline, callback)
    if outcome.reopen:
        reopened = CaseReopened(
            case_id=case_id,
            correlation_id=case_id,
            operator_id=operator.sub,
            reason=f"{outcome.reason}: {body.note}".strip(": "),
        )
        published = await _emit(hotline, reopened) and published
    state = await hotline.store.refresh_status(case_id)
    return CallbackOut(
        case_id=case_id,
        satisfaction=body.satisfaction,
        reopened=outcome.reopen,
        published=published,
        status=state.status if state else None,
    )
