"""The officer's desk over HTTP (thin; `services.relief.desk`): a grant's applicant's phone revealed with a
reason, the payment file for the bank and its return file (P6.1), the registry search (P2.3), the P5.2d
notices to a home district. Models in `services.relief.desk_schemas`."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, File, Query, Response, UploadFile

from common.errors import DomainError
from services.relief.api import Officer, Reader, ReliefDep
from services.relief.desk import Desk
from services.relief.desk_schemas import (
    Acknowledge,
    Acknowledged,
    HukouNotice,
    PendingPayments,
    PhoneRevealed,
    RegistryPage,
    ReturnReport,
    RevealReason,
)
from services.relief.domain.facts import Category

router = APIRouter(prefix="/api/v1", tags=["relief officer's desk"])


@router.post(
    "/entitlements/{entitlement_id}/applicant/phone",
    summary="The applicant's phone in full, with a reason (audited)",
    response_model=PhoneRevealed,
)
async def reveal_phone(entitlement_id: str, body: RevealReason, officer: Officer, relief: ReliefDep) -> PhoneRevealed:
    return await Desk(relief).reveal_phone(entitlement_id, officer, body.reason)


@router.get(
    "/payments/pending",
    summary="What the payment file would hold (ID-card numbers masked)",
    response_model=PendingPayments,
)
async def pending_payments(officer: Officer, relief: ReliefDep) -> PendingPayments:
    return await Desk(relief).pending(officer)


@router.get(
    "/payments/export",
    summary="Payment file for the bank: approved-and-unpaid grants of your district (audited)",
    response_class=Response,
    responses={
        200: {
            "description": "the payment file (CSV, UTF-8 with a BOM, or xlsx)",
            "content": {
                "text/csv": {"schema": {"type": "string", "format": "binary"}},
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {
                    "schema": {"type": "string", "format": "binary"}
                },
            },
        }
    },
)
async def export_payments(officer: Officer, relief: ReliefDep, format: Literal["csv", "xlsx"] = "csv") -> Response:
    file = await Desk(relief).export(officer, format)
    return Response(
        file.content,
        media_type=file.media_type,
        headers={
            "Content-Disposition": f'attachment; filename="{file.filename}"',
            "X-Rows": str(file.rows),
            "Cache-Control": "no-store",
        },
    )


@router.post(
    "/payments/returns",
    summary="The bank's return file (CSV or xlsx): marks paid once, reports every row",
    response_model=ReturnReport,
)
async def import_returns(officer: Officer, relief: ReliefDep, file: Annotated[UploadFile, File()]) -> ReturnReport:
    content = await file.read()
    if not content:
        raise DomainError("文件为空", "the file is empty", field="file", status=422)
    return await Desk(relief).import_returns(officer, file.filename or "upload", content)


@router.get(
    "/registry", summary="Registry records by name or (masked) ID-card number, paged", response_model=RegistryPage
)
async def registry_search(
    reader: Reader,
    relief: ReliefDep,
    q: Annotated[
        str, Query(max_length=40, description="a name, a recipient id, an ID-card number, masked or in part")
    ] = "",
    district: Annotated[str | None, Query(pattern=r"^\d{6}$")] = None,
    category: Category | None = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    page_size: Annotated[int, Query(ge=1, le=200)] = 20,
) -> RegistryPage:
    return await Desk(relief).registry_page(
        reader, q=q, district=district, category=str(category) if category else None, page=page, page_size=page_size
    )


@router.get(
    "/hukou-notices",
    summary="P5.2d notices told to your district (received) or by it (sent)",
    response_model=list[HukouNotice],
    response_model_exclude_unset=True,
)
async def hukou_notices(
    officer: Officer, relief: ReliefDep, direction: Literal["received", "sent"] = "received"
) -> list[HukouNotice]:
    return await Desk(relief).notices(officer, direction)


@router.post(
    "/hukou-notices/{grant_id}/acknowledge",
    summary="The hukou district acknowledges a P5.2d notice (once)",
    response_model=Acknowledged,
)
async def acknowledge_notice(
    grant_id: str, body: Acknowledge, officer: Officer, relief: ReliefDep, response: Response
) -> Acknowledged:
    done = await Desk(relief).acknowledge(officer, grant_id, body.note)
    response.status_code = 201 if done.created else 200
    return done
