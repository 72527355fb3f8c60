"""Relief's HTTP API (thin): relief officers decide and pay (own district), coordinators run subsidies,
admins add dibao standards. Bodies and response models are in `services.relief.schemas`; every query is
the store's (`services.relief.store`). Error bodies are Chinese first, English too."""

from __future__ import annotations

from datetime import UTC, date, datetime
from importlib import resources
from typing import Annotated

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.responses import HTMLResponse

from common.app import Runtime, get_runtime
from common.auth import require_roles
from common.errors import DomainError, Forbidden, NotFound
from common.params import CaseIdPath
from common.principal import CITY, Principal, Role
from contracts.codes import districts
from services.relief.desk import Desk
from services.relief.domain.money import yuan
from services.relief.domain.parameters import RuleParameters
from services.relief.domain.registry import hash_id_card
from services.relief.domain.runs import RunSpec, ineligible_categories, pay_before_error, run_id_for
from services.relief.domain.standards import DibaoStandard
from services.relief.records import SubsidyRun
from services.relief.schemas import (
    AddedStandard,
    Approve,
    CaseLedger,
    Discharge,
    EntitlementDetail,
    EntitlementView,
    IdCard,
    ImportSummary,
    LedgerEntryView,
    OpenRun,
    Payment,
    PaymentRecorded,
    PersonLedger,
    Reason,
    RecipientLedger,
    RegistryRecordView,
    RuleParametersView,
    RunDetail,
    RunStarted,
    RunView,
    StandardView,
)
from services.relief.service import Relief, district_scope
from services.relief.subsidies import execute_run, import_registry, run_document

Officer = Annotated[Principal, Depends(require_roles(Role.RELIEF_OFFICER))]
Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Reader = Annotated[Principal, Depends(require_roles(Role.RELIEF_OFFICER, Role.COORDINATOR))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
ReliefRuntime = Annotated[Runtime[Relief], Depends(get_runtime)]


async def get_relief(runtime: ReliefRuntime) -> Relief:
    return runtime.service


ReliefDep = Annotated[Relief, Depends(get_relief)]
router = APIRouter(prefix="/api/v1", tags=["relief"])
page = APIRouter(tags=["page"])
# Routes whose views are built from stored records reply `response_model_exclude_unset`: a field a record
# was stored without stays out of the reply, as it is out of the record (`services.relief.schemas`).


# ------------------------------------------------------------------------ entitlements (officers)


@router.get(
    "/entitlements",
    summary="Proposals and grants of the officer's district",
    response_model=list[EntitlementView],
    response_model_exclude_unset=True,
)
async def list_entitlements(
    officer: Officer,
    relief: ReliefDep,
    status: str | None = None,
    rule_id: str | None = None,
    case_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[EntitlementView]:
    found = await relief.visible_to(officer, status=status, rule_id=rule_id, case_id=case_id, limit=limit)
    applicants = await Desk(relief).applicants(found)
    return [EntitlementView.of(e, applicant=applicants.get(e.case_id)) for e in found]


@router.get("/entitlements/{entitlement_id}", response_model=EntitlementDetail, response_model_exclude_unset=True)
async def get_entitlement(entitlement_id: str, officer: Officer, relief: ReliefDep) -> EntitlementDetail:
    """One entitlement with its applicant; a monthly grant lists `due_periods`: months payable now and not
    yet paid."""
    entitlement = await relief.get(entitlement_id, officer)
    applicant = (await Desk(relief).applicants([entitlement])).get(entitlement.case_id)
    return EntitlementDetail.with_due(entitlement, relief.due_periods(entitlement), applicant)


@router.post(
    "/entitlements/{entitlement_id}/approve",
    summary="Approve (or sign, under four eyes)",
    response_model=EntitlementView,
    response_model_exclude_unset=True,
)
async def approve(entitlement_id: str, body: Approve, officer: Officer, relief: ReliefDep) -> EntitlementView:
    return EntitlementView.of(
        await relief.approve(entitlement_id, officer, body.amount_yuan, body.note, body.confirmed_on, body.contested)
    )


@router.post("/entitlements/{entitlement_id}/reject", response_model=EntitlementView, response_model_exclude_unset=True)
async def reject(entitlement_id: str, body: Reason, officer: Officer, relief: ReliefDep) -> EntitlementView:
    return EntitlementView.of(await relief.reject(entitlement_id, officer, body.reason))


@router.post("/entitlements/{entitlement_id}/cancel", response_model=EntitlementView, response_model_exclude_unset=True)
async def cancel(entitlement_id: str, body: Reason, officer: Officer, relief: ReliefDep) -> EntitlementView:
    return EntitlementView.of(await relief.cancel(entitlement_id, officer, body.reason))


@router.post(
    "/entitlements/{entitlement_id}/discharge",
    summary="P5.2a: record discharge; stops the grant",
    response_model=EntitlementView,
    response_model_exclude_unset=True,
)
async def discharge(entitlement_id: str, body: Discharge, officer: Officer, relief: ReliefDep) -> EntitlementView:
    return EntitlementView.of(await relief.discharge(entitlement_id, officer, body.discharged_on, body.note))


@router.post(
    "/entitlements/{entitlement_id}/payments",
    status_code=201,
    summary="Record a payment once per (case, rule, period); a repeat returns the same entry (200)",
    response_model=PaymentRecorded,
    response_model_exclude_unset=True,
)
async def record_payment(
    entitlement_id: str, body: Payment, officer: Officer, relief: ReliefDep, response: Response
) -> PaymentRecorded:
    created, entry = await relief.pay(entitlement_id, officer, body.period, body.payment_reference)
    if not created:
        response.status_code = 200
    return PaymentRecorded(created=created, entry=LedgerEntryView.of(entry))


# ------------------------------------------------------------------------ the ledger (P6.1)


@router.get(
    "/cases/{case_id}/ledger",
    summary="Every payment of a case",
    response_model=CaseLedger,
    response_model_exclude_unset=True,
)
async def case_ledger(case_id: CaseIdPath, reader: Reader, relief: ReliefDep) -> CaseLedger:
    entries = await relief.store.ledger_of_case(case_id, district=district_scope(reader))
    await relief.store.record_audit(reader, action="ledger_read", reason="case", case_id=case_id, rows=len(entries))
    return CaseLedger.of(case_id, entries)


@router.get(
    "/recipients/{recipient_id}/ledger",
    summary="Every payment to a recipient",
    response_model=RecipientLedger,
    response_model_exclude_unset=True,
)
async def recipient_ledger(recipient_id: str, reader: Reader, relief: ReliefDep) -> RecipientLedger:
    entries = await relief.store.ledger_of_recipients([recipient_id], district=district_scope(reader))
    await relief.store.record_audit(
        reader, action="ledger_read", reason="recipient", recipient_id=recipient_id, rows=len(entries)
    )
    return RecipientLedger.of(recipient_id, entries)


@router.post(
    "/ledger/by-id-card",
    summary="Payments to a person, by ID-card number (kept out of URLs and logs)",
    response_model=PersonLedger,
    response_model_exclude_unset=True,
)
async def ledger_by_id_card(body: IdCard, reader: Reader, relief: ReliefDep) -> PersonLedger:
    id_hash = hash_id_card(body.id_card, relief.id_hash_salt)
    ids = {f"H-{id_hash[:16]}"}
    if rec := await relief.store.registry_by_id_hash(id_hash):
        ids.add(rec.id)
    entries = await relief.store.ledger_of_recipients(ids, district=district_scope(reader))
    # The number itself stays out of the audit too: the recipient ids it resolved to say whose ledger it was.
    await relief.store.record_audit(
        reader, action="ledger_read", reason="id_card", recipient_ids=sorted(ids), rows=len(entries)
    )
    return PersonLedger.of(sorted(ids), entries)


# ------------------------------------------------------------------------ registry (P2.3)


@router.post(
    "/registry/import",
    summary="Import registry CSV: good rows kept, each bad row named",
    response_model=ImportSummary,
)
async def registry_import(reader: Reader, relief: ReliefDep, file: Annotated[UploadFile, File()]) -> ImportSummary:
    try:
        text = (await file.read()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError("文件须为 UTF-8 编码的 CSV", "the file must be UTF-8 CSV", field="file", status=422) from exc
    try:
        report = await import_registry(
            relief.store,
            text,
            relief.id_hash_salt,
            only_district=None if reader.city_level else reader.district,
            on_change=relief.care.discovery.registry_changed if relief.care and relief.care.discovery else None,
        )
    except ValueError as exc:
        zh, _, en = str(exc).partition(" | ")
        raise DomainError(zh, en or zh, field="file", status=422) from exc
    return ImportSummary.of(report)


@router.get("/registry/{recipient_id}", response_model=RegistryRecordView, response_model_exclude_unset=True)
async def registry_record(recipient_id: str, reader: Reader, relief: ReliefDep) -> RegistryRecordView:
    record = await relief.store.registry_get(recipient_id)
    if record is None or not reader.can_see_district(record.district):
        raise NotFound("未找到该在册对象", f"no registry record {recipient_id}")
    await relief.store.record_audit(reader, action="registry_read", reason="record", recipient_id=recipient_id)
    return RegistryRecordView.of(record)


# ------------------------------------------------------------------------ subsidy runs (P1.3, P2.1)


@router.post(
    "/runs",
    status_code=201,
    summary="Open a subsidy run (P1.3 price linkage; P2.1 holiday, first payment, pre-holiday)",
    response_model=RunView,
    response_model_exclude_unset=True,
)
async def open_run(body: OpenRun, coordinator: Coordinator, relief: ReliefDep, response: Response) -> RunView:
    if bad := ineligible_categories(body.kind, set(body.amounts)):
        raise DomainError(
            f"该补贴不发放给：{', '.join(bad)}",
            f"this subsidy does not cover: {', '.join(bad)}",
            field="amounts",
            status=422,
        )
    if why := pay_before_error(body.kind, body.month, body.pay_before):
        zh, _, en = why.partition(" | ")
        raise DomainError(zh, en, field="pay_before", status=422)
    if coordinator.city_level:
        scope, chosen = CITY, body.districts or sorted(districts())
    else:
        if body.districts and set(body.districts) != {coordinator.district}:
            raise Forbidden(
                "区县协调员只能为本区县开启发放", "a district coordinator opens runs for their own district only"
            )
        scope, chosen = coordinator.district or "", [coordinator.district or ""]
    spec = RunSpec(
        run_id_for(body.kind, body.month, body.label, scope),
        body.kind,
        body.month,
        frozenset(chosen),
        {c: yuan(a) for c, a in body.amounts.items()},
        body.pay_before,
    )
    run = run_document(spec, body.label, scope, coordinator.sub, datetime.now(UTC))
    if not await relief.store.create_run(run):
        existing = await relief.store.get_run(spec.run_id)
        assert existing is not None  # the insert was refused as a duplicate of this id
        if (existing.amounts, existing.districts, existing.pay_before) != (run.amounts, run.districts, run.pay_before):
            raise DomainError(
                "同名发放批次已存在且内容不同",
                "a run with this id exists with different terms",
                field="label",
                code="run_exists",
            )
        response.status_code = 200
        return RunView.of(existing)
    return RunView.of(run)


@router.post(
    "/runs/{run_id}/execute",
    status_code=202,
    summary="Pay the run (again): nobody is paid twice",
    response_model=RunStarted,
)
async def execute(run_id: str, coordinator: Coordinator, runtime: ReliefRuntime) -> RunStarted:
    relief = runtime.service
    run = await _run_for(run_id, coordinator, relief)
    runtime.spawn(
        execute_run(
            relief.store, run_id, by=coordinator.sub, grants=relief.entitlements, batch_size=relief.run_batch_size
        ),
        f"run-{run_id}",
    )
    return RunStarted(run_id=run.id, status="running")


@router.get("/runs", response_model=list[RunView], response_model_exclude_unset=True)
async def list_runs(reader: Reader, relief: ReliefDep) -> list[RunView]:
    return [RunView.of(run) for run in await relief.store.list_runs(scope=district_scope(reader))]


@router.get("/runs/{run_id}", response_model=RunDetail, response_model_exclude_unset=True)
async def get_run(run_id: str, reader: Reader, relief: ReliefDep) -> RunDetail:
    run = await _run_for(run_id, reader, relief)
    return RunDetail.counted(run, await relief.store.run_ledger_count(run_id))


async def _run_for(run_id: str, who: Principal, relief: Relief) -> SubsidyRun:
    run = await relief.store.get_run(run_id)
    if run is None or not (who.city_level or run.scope == who.district):
        raise NotFound("未找到该发放批次", f"no run {run_id}")
    return run


# ------------------------------------------------------------------------ standards (admin)


@router.get("/standards", summary="The dibao standard in force in a district on a day", response_model=StandardView)
async def standard_in_force(reader: Reader, relief: ReliefDep, district: str, on: date | None = None) -> StandardView:
    book = await relief.standards_book()
    try:
        found = book.standard(district, on or relief.clock())
    except LookupError as exc:
        raise NotFound("该区县该日无低保标准", str(exc)) from exc
    return StandardView.of(found)


@router.post(
    "/admin/standards",
    status_code=201,
    summary="Add a dibao standard from a date (admin)",
    response_model=AddedStandard,
)
async def add_standard(body: DibaoStandard, admin: Admin, relief: ReliefDep) -> AddedStandard:
    if not await relief.store.add_standard(body, added_by=admin.sub):
        raise DomainError(
            "该区县该日期已有新增标准",
            "a standard for this district and date was already added",
            field="effective_from",
            code="standard_exists",
        )
    return AddedStandard.model_validate(body.model_dump() | {"added_by": admin.sub})


@router.get(
    "/standards/rules",
    summary="The relief rules' parameter set in force on a day (P5.1, P5.2)",
    response_model=RuleParametersView,
)
async def rule_parameters_in_force(reader: Reader, relief: ReliefDep, on: date | None = None) -> RuleParametersView:
    day = on or relief.clock()
    _, rules = await relief.dated_data()
    try:
        return RuleParametersView.of(rules.in_force(day), day)
    except LookupError as exc:
        raise NotFound("该日无救助规则参数", str(exc)) from exc


@router.post(
    "/admin/standards/rules",
    status_code=201,
    summary="Add a parameter set of the relief rules from a date (admin)",
    response_model=RuleParametersView,
)
async def add_rule_parameters(body: RuleParameters, admin: Admin, relief: ReliefDep) -> RuleParametersView:
    if not await relief.store.add_rule_parameters(body, added_by=admin.sub):
        raise DomainError(
            "该日期已有新增规则参数",
            "a parameter set from this date was already added",
            field="effective_from",
            code="parameters_exist",
        )
    return RuleParametersView.of(body, body.effective_from, added_by=admin.sub)


# ------------------------------------------------------------------------ the page


@page.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(resources.files("services.relief").joinpath("static/index.html").read_text(encoding="utf-8"))
