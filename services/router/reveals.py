"""Who and where on the desk: a case's details with the caller masked, the caller revealed with a reason
(an append-only audit record first: who, when, why, which fields), and the caller's earlier cases found by
the keyed hashes of their phone and ID card (P2.2, P2.3, P6.2, P6.3). Nothing personal is logged."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import structlog

from common.errors import NotFound
from common.principal import Principal
from contracts.events import utcnow
from services.router.cases import CaseService
from services.router.domain.case import Case, CaseStatus
from services.router.domain.details import CaseDetails, RevealRecord, may_list_reveals, may_see, reveal_record
from services.router.domain.errors import case_not_found

log = structlog.get_logger("router.reveals")


@dataclass(frozen=True)
class EarlierCase:
    case_id: str
    received_at: datetime
    needs: list[str]
    status: CaseStatus


async def visible_case(service: CaseService, case_id: str, who: Principal) -> Case:
    """The case, if `who` may see it (its department and district have a task in it, or its coordinator)."""
    case = await service.store.get(case_id)
    if case is None:
        raise case_not_found(case_id)
    may_see(case, who)
    return case


async def details_of(service: CaseService, case: Case) -> tuple[CaseDetails | None, list[EarlierCase]]:
    """The case's details record (to be shown masked) and the caller's earlier cases."""
    details = await service.store.case_details(case)
    keys = await service.store.lookup_keys_of(case.case_id) if details is not None else []
    earlier = [EarlierCase(*row) for row in await service.store.earlier_cases(case, keys)]
    return details, earlier


async def reveal(service: CaseService, case_id: str, who: Principal, reason: str) -> tuple[CaseDetails, RevealRecord]:
    """The caller's clear name, phone and address, for someone who may see the case; the audit record is
    written before anything is shown."""
    case = await visible_case(service, case_id, who)
    details = await service.store.case_details(case)
    if details is None:
        raise NotFound(
            f"案件 {case_id} 没有记录来电人信息", f"case {case_id} has no caller details recorded", field="case_id"
        )
    record = reveal_record(case, who, reason, uuid.uuid4().hex, utcnow())
    await service.store.record_reveal(record)
    log.info("caller details revealed", case_id=case_id, reveal_id=record.reveal_id, by=who.sub)
    return details, record


async def reveals_of(service: CaseService, case_id: str, who: Principal) -> list[RevealRecord]:
    """A case's reveal records for its coordinator or an admin (all), or a worker (their department's)."""
    case = await service.store.get(case_id)
    if case is None:
        raise case_not_found(case_id)
    return await service.store.reveals_of(case_id, may_list_reveals(case, who))
