"""Relief's HTTP API (thin): relief officers decide and pay (own district), coordinators run subsidies,
admins add dibao standards. Error bodies are Chinese first, English too."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Response, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ConfigDict, Field, field_validator

from common.app import RuntimeDep
from common.auth import require_roles
from common.errors import DomainError, Forbidden, NotFound
from common.principal import CITY, Principal, Role
from contracts.codes import districts, is_district
from services.relief.domain.facts import Category
from services.relief.domain.money import yuan
from services.relief.domain.registry import hash_id_card, id_card_checksum_ok
from services.relief.domain.runs import LABEL_PATTERN, RunKind, RunSpec, ineligible_categories, run_id_for
from services.relief.domain.schedule import PERIOD_PATTERN
from services.relief.domain.standards import DibaoStandard
from services.relief.service import Relief
from services.relief.subsidies import execute_run, import_registry, run_document

Officer = Annotated[Principal, Depends(require_roles(Role.RELIEF_OFFICER))]
Coordinator = Annotated[Principal, Depends(require_roles(Role.COORDINATOR))]
Reader = Annotated[Principal, Depends(require_roles(Role.RELIEF_OFFICER, Role.COORDINATOR))]
Admin = Annotated[Principal, Depends(require_roles(Role.ADMIN))]


def get_relief(runtime: RuntimeDep) -> Relief:
    return runtime.service


ReliefDep = Annotated[Relief, Depends(get_relief)]
router = APIRouter(prefix="/api/v1", tags=["relief"])
page = APIRouter(tags=["page"])
HIDDEN = {"outbox": 0, "outbox_pending": 0, "id_card_hash": 0}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Approve(Body):
    amount_yuan: Decimal | None = Field(default=None, description="P5.2b/P5.2c: the amount the officer sets")
    note: str = Field(default="", max_length=2000)
    confirmed_on: date | None = Field(default=None, description="P5.2a: the day of confirmation (start)")
    contested: bool = Field(default=False, description="P5.1: the application was contested (needs appraisal)")


class Reason(Body):
    reason: str = Field(min_length=2, max_length=2000)


class Discharge(Body):
    discharged_on: date
    note: str = Field(default="", max_length=2000)


class Payment(Body):
    period: str = Field(description="YYYY-MM for a monthly grant, `once` for a one-time grant")
    payment_reference: str = Field(min_length=1, max_length=200)

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if value != "once" and not PERIOD_PATTERN.match(value):
            raise ValueError("期间应为 YYYY-MM 或 once | period must be YYYY-MM or once")
        return value


class IdCard(Body):
    id_card: str

    @field_validator("id_card")
    @classmethod
    def _valid(cls, value: str) -> str:
        if not id_card_checksum_ok(value.strip().upper()):
            raise ValueError("身份证号码格式或校验位不正确 | ID-card number malformed or check digit wrong")
        return value.strip().upper()


class OpenRun(Body):
    kind: RunKind
    month: str
    label: str = Field(default="main", description="distinguishes two runs of one kind in one month")
    districts: list[str] = Field(default_factory=list, description="empty: the coordinator's district (or all)")
    amounts: dict[Category, Decimal] = Field(min_length=1, description="yuan per person, by recipient category")

    @field_validator("month")
    @classmethod
    def _month(cls, value: str) -> str:
        if not PERIOD_PATTERN.match(value):
            raise ValueError("月份应为 YYYY-MM | month must be YYYY-MM")
        return value

    @field_validator("label")
    @classmethod
    def _label(cls, value: str) -> str:
        if not LABEL_PATTERN.match(value):
            raise ValueError("标识只能用小写字母、数字和连字符 | label: lowercase letters, digits and hyphens")
        return value

    @field_validator("districts")
    @classmethod
    def _districts(cls, value: list[str]) -> list[str]:
        if bad := [d for d in value if not is_district(d)]:
            raise ValueError(f"未知的区县代码 {', '.join(bad)} | unknown district codes {', '.join(bad)}")
        return value

    @field_validator("amounts")
    @classmethod
    def _amounts(cls, value: dict[Category, Decimal]) -> dict[Category, Decimal]:
        for amount in value.values():
            if amount <= 0 or yuan(amount) != amount:
                raise ValueError("金额须大于0且最多两位小数 | amounts must be positive with at most two decimals")
        return value


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in HIDDEN}


# ------------------------------------------------------------------------ entitlements (officers)


@router.get("/entitlements", summary="Proposals and grants of the officer's district")
async def list_entitlements(
    officer: Officer,
    relief: ReliefDep,
    status: str | None = None,
    rule_id: str | None = None,
    case_id: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 200,
) -> list[dict[str, Any]]:
    query: dict[str, Any] = {} if officer.city_level else {"district": officer.district}
    query |= {k: v for k, v in (("status", status), ("rule_id", rule_id), ("case_id", case_id)) if v}
    return await relief.store.list_entitlements(query, limit)


@router.get("/entitlements/{entitlement_id}")
async def get_entitlement(entitlement_id: str, officer: Officer, relief: ReliefDep) -> dict[str, Any]:
    """One entitlement; a monthly grant lists `due_periods`: months payable now and not yet paid."""
    doc = await relief.get(entitlement_id, officer)
    return _public(doc) | {"due_periods": relief.due_periods(doc)}


@router.post("/entitlements/{entitlement_id}/approve", summary="Approve (or sign, under four eyes)")
async def approve(entitlement_id: str, body: Approve, officer: Officer, relief: ReliefDep) -> dict[str, Any]:
    return _public(
        await relief.approve(entitlement_id, officer, body.amount_yuan, body.note, body.confirmed_on, body.contested)
    )


@router.post("/entitlements/{entitlement_id}/reject")
async def reject(entitlement_id: str, body: Reason, officer: Officer, relief: ReliefDep) -> dict[str, Any]:
    return _public(await relief.reject(entitlement_id, officer, body.reason))


@router.post("/entitlements/{entitlement_id}/cancel")
async def cancel(entitlement_id: str, body: Reason, officer: Officer, relief: ReliefDep) -> dict[str, Any]:
    return _public(await relief.cancel(entitlement_id, officer, body.reason))


@router.post("/entitlements/{entitlement_id}/discharge", summary="P5.2a: record discharge; stops the grant")
async def discharge(entitlement_id: str, body: Discharge, officer: Officer, relief: ReliefDep) -> dict[str, Any]:
    return _public(await relief.discharge(entitlement_id, officer, body.discharged_on, body.note))


@router.post(
    "/entitlements/{entitlement_id}/payments",
    status_code=201,
    summary="Record a payment once per (case, rule, period); a repeat returns the same entry (200)",
)
async def record_payment(
    entitlement_id: str, body: Payment, officer: Officer, relief: ReliefDep, response: Response
) -> dict[str, Any]:
    created, entry = await relief.pay(entitlement_id, officer, body.period, body.payment_reference)
    if not created:
        response.status_code = 200
    return {"created": created, "entry": {k: v for k, v in entry.items() if k != "_id"}}


# ------------------------------------------------------------------------ the ledger (P6.1)


def _ledger_scope(reader: Principal) -> dict[str, Any]:
    return {} if reader.city_level else {"district": reader.district}


@router.get("/cases/{case_id}/ledger", summary="Every payment of a case")
async def case_ledger(case_id: str, reader: Reader, relief: ReliefDep) -> dict[str, Any]:
    query = {"case_id": case_id} | _ledger_scope(reader)
    entries = await relief.store.ledger_entries(query)
    return {"case_id": case_id, "entries": entries, "total_yuan": _total(entries)}


@router.get("/recipients/{recipient_id}/ledger", summary="Every payment to a recipient")
async def recipient_ledger(recipient_id: str, reader: Reader, relief: ReliefDep) -> dict[str, Any]:
    entries = await relief.store.ledger_entries({"recipient_id": recipient_id} | _ledger_scope(reader))
    return {"recipient_id": recipient_id, "entries": entries, "total_yuan": _total(entries)}


@router.post("/ledger/by-id-card", summary="Payments to a person, by ID-card number (kept out of URLs and logs)")
async def ledger_by_id_card(body: IdCard, reader: Reader, relief: ReliefDep) -> dict[str, Any]:
    id_hash = hash_id_card(body.id_card, relief.id_hash_salt)
    ids = {f"H-{id_hash[:16]}"}
    if rec := await relief.store.registry_by_id_hash(id_hash):
        ids.add(rec["_id"])
    entries = await relief.store.ledger_entries({"recipient_id": {"$in": sorted(ids)}} | _ledger_scope(reader))
    return {"recipient_ids": sorted(ids), "entries": entries, "total_yuan": _total(entries)}


def _total(entries: list[dict[str, Any]]) -> str:
    return str(yuan(sum((Decimal(e["amount"]) for e in entries), Decimal(0))))


# ------------------------------------------------------------------------ registry (P2.3)


@router.post("/registry/import", summary="Import registry CSV: good rows kept, each bad row named")
async def registry_import(reader: Reader, relief: ReliefDep, file: Annotated[UploadFile, File()]) -> dict[str, Any]:
    try:
        text = (await file.read()).decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DomainError("文件须为 UTF-8 编码的 CSV", "the file must be UTF-8 CSV", field="file", status=422) from exc
    try:
        return await import_registry(
            relief.store, text, relief.id_hash_salt, only_district=None if reader.city_level else reader.district
        )
    except ValueError as exc:
        zh, _, en = str(exc).partition(" | ")
        raise DomainError(zh, en or zh, field="file", status=422) from exc


@router.get("/registry/{recipient_id}")
async def registry_record(recipient_id: str, reader: Reader, relief: ReliefDep) -> dict[str, Any]:
    doc = await relief.store.registry_get(recipient_id)
    if doc is None or not reader.can_see_district(doc["district"]):
        raise NotFound("未找到该在册对象", f"no registry record {recipient_id}")
    return doc


# ------------------------------------------------------------------------ subsidy runs (P1.3, P2.1)


@router.post("/runs", status_code=201, summary="Open a subsidy run (P1.3 price linkage, P2.1 holiday)")
async def open_run(body: OpenRun, coordinator: Coordinator, relief: ReliefDep, response: Response) -> dict[str, Any]:
    if bad := ineligible_categories(body.kind, set(body.amounts)):
        raise DomainError(
            f"该补贴不发放给：{', '.join(bad)}",
            f"this subsidy does not cover: {', '.join(bad)}",
            field="amounts",
            status=422,
        )
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
    )
    doc = run_document(spec, body.label, scope, coordinator.sub, datetime.now(UTC))
    if not await relief.store.create_run(doc):
        existing = await relief.store.get_run(spec.run_id)
        assert existing is not None
        if existing["amounts"] != doc["amounts"] or existing["districts"] != doc["districts"]:
            raise DomainError(
                "同名发放批次已存在且内容不同",
                "a run with this id exists with different terms",
                field="label",
                code="run_exists",
            )
        response.status_code = 200
        return existing
    return doc


@router.post("/runs/{run_id}/execute", status_code=202, summary="Pay the run (again): nobody is paid twice")
async def execute(run_id: str, coordinator: Coordinator, relief: ReliefDep, runtime: RuntimeDep) -> dict[str, Any]:
    run = await _run_for(run_id, coordinator, relief)
    runtime.spawn(
        execute_run(
            relief.store,
            run_id,
            by=coordinator.sub,
            grants=relief.entitlements,
            batch_size=runtime.settings.run_batch_size,
        ),  # type: ignore[attr-defined]
        f"run-{run_id}",
    )
    return {"run_id": run["_id"], "status": "running"}


@router.get("/runs")
async def list_runs(reader: Reader, relief: ReliefDep) -> list[dict[str, Any]]:
    return await relief.store.list_runs({} if reader.city_level else {"scope": reader.district})


@router.get("/runs/{run_id}")
async def get_run(run_id: str, reader: Reader, relief: ReliefDep) -> dict[str, Any]:
    run = await _run_for(run_id, reader, relief)
    return run | {"ledger_count": await relief.store.ledger_count({"run_id": run_id})}


async def _run_for(run_id: str, who: Principal, relief: Relief) -> dict[str, Any]:
    run = await relief.store.get_run(run_id)
    if run is None or not (who.city_level or run["scope"] == who.district):
        raise NotFound("未找到该发放批次", f"no run {run_id}")
    return run


# ------------------------------------------------------------------------ standards (admin)


@router.get("/standards", summary="The dibao standard in force in a district on a day")
async def standard_in_force(reader: Reader, relief: ReliefDep, district: str, on: date | None = None) -> dict[str, Any]:
    book = await relief.standards_book()
    try:
        found = book.standard(district, on or relief.clock())
    except LookupError as exc:
        raise NotFound("该区县该日无低保标准", str(exc)) from exc
    return found.model_dump(mode="json")


@router.post("/admin/standards", status_code=201, summary="Add a dibao standard from a date (admin)")
async def add_standard(body: DibaoStandard, admin: Admin, relief: ReliefDep) -> dict[str, Any]:
    doc = body.model_dump(mode="json") | {"added_by": admin.sub}
    doc["effective_from"] = body.effective_from.isoformat()
    if not await relief.store.add_standard(doc):
        raise DomainError(
            "该区县该日期已有新增标准",
            "a standard for this district and date was already added",
            field="effective_from",
            code="standard_exists",
        )
    return {k: v for k, v in doc.items() if k != "_id"}


# ------------------------------------------------------------------------ the page


@page.get("/", response_class=HTMLResponse, include_in_schema=False)
async def index() -> HTMLResponse:
    return HTMLResponse(resources.files("services.relief").joinpath("static/index.html").read_text(encoding="utf-8"))
