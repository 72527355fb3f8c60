"""What relief's HTTP API takes and gives: the request bodies and the response models of every route.

A response is built from the typed record (`services.relief.documents`, `services.relief.records`) by
the view's `of`: the view declares what is shown (no outbox, no ID-card hash), and, with the routes'
`response_model_exclude_unset`, a field the record was stored without stays out (a case payment has no
`category`). Times are written as `datetime.isoformat` gives them, days and amounts as stored.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, field_validator

from contracts.codes import is_district
from contracts.validation import Yuan
from services.relief.documents import Entitlement, StoredDay, StoredYuan
from services.relief.domain.facts import Category
from services.relief.domain.lifecycle import Status
from services.relief.domain.money import as_str, yuan
from services.relief.domain.parameters import RuleParameters
from services.relief.domain.registry import ImportReport, id_card_checksum_ok
from services.relief.domain.rules import AmountKind, Schedule
from services.relief.domain.runs import LABEL_PATTERN, RunKind
from services.relief.domain.schedule import PERIOD_PATTERN
from services.relief.domain.standards import DibaoStandard
from services.relief.records import Applicant, LedgerEntry, RegistryRecord, SubsidyRun

Timestamp = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]


# ------------------------------------------------------------------------ request bodies


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Approve(Body):
    amount_yuan: Yuan | None = Field(default=None, description="P5.2b/P5.2c: the amount the officer sets")
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
    amounts: dict[Category, Yuan] = Field(min_length=1, description="yuan per person, by recipient category")
    pay_before: date | None = Field(
        default=None, description="pre_holiday (P2.1): the festival day, e.g. the Spring Festival; paid the day before"
    )

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


# ------------------------------------------------------------------------ entitlements


class View(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class DecisionView(View):
    """One decision (P6.3) as recorded; the details depend on the action."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")

    action: str
    by: str
    shown_as: str | None = None
    at: Timestamp | None = None
    role: str | None = None
    district: str | None = None
    rule_id: str | None = None
    facts: dict[str, Any] | None = None
    note: str | None = None
    reasons: list[str] | None = None
    amount: str | None = None
    period: str | None = None
    payment_reference: str | None = None
    discharged_on: str | None = None
    contested: bool | None = None
    steps: list[str] | None = None
    parameters: str | None = Field(default=None, description="the rule parameter set applied, `id@vN`")
    verified: list[str] | None = Field(default=None, description="intake answers the approving officer verified")


class RegistryMatchView(View):
    """The applicant's record in the low-income population database (P2.3), when their ID-card matches."""

    recipient_id: str
    name: str | None = None
    district: str
    area: str
    categories: list[str]
    members: int | None = None
    approved_on: StoredDay
    ended_on: StoredDay | None = None
    active: bool

    @classmethod
    def of(cls, record: RegistryRecord, on: date) -> RegistryMatchView:
        return cls.model_validate(
            record.model_dump(exclude={"id", "id_card_hash", "id_card_masked", "source_case_id"})
            | {"recipient_id": record.id, "active": record.ended_on is None or record.ended_on >= on}
        )


class ApplicantView(View):
    """Who a grant pays, as the hotline recorded the caller (P5.2, P6.1): the ID-card and phone numbers
    masked (a phone is revealed with a reason, audited), the household as declared and as registered."""

    name: str
    id_card_masked: str | None = None
    phone_masked: str | None = None
    household_status: str
    special_groups: list[str] = Field(default_factory=list)
    hukou_district: str | None = None
    registry: RegistryMatchView | None = None

    @classmethod
    def of(cls, applicant: Applicant, record: RegistryRecord | None, on: date) -> ApplicantView:
        return cls.model_validate(
            applicant.model_dump(exclude={"case_id", "id_card", "phone", "id_card_hash", "event_id", "recorded_at"})
            | {"registry": RegistryMatchView.of(record, on) if record else None}
        )


class CheckView(View):
    """An intake answer the rule needed and did not get: the officer verifies it (P6.3)."""

    field: str = Field(description="the intake answer's attribute code (contracts/data/services.yaml)")
    reason_zh: str
    reason_en: str


class EntitlementView(View):
    """A proposal or grant, as an officer sees it (without its outbox and the caller's ID-card hash), with
    its applicant (None: a case recorded before relief kept applicants)."""

    id: str = Field(alias="_id")
    case_id: str
    rule_id: str
    need: str
    status: Status
    schedule: Schedule
    amount_kind: AmountKind
    district: str
    recipient_id: str
    provisions: list[str]
    amount: StoredYuan | None
    cap: StoredYuan | None
    four_eyes_above: StoredYuan | None
    hukou_notice_district: str | None
    area: str | None
    reasons: list[str]
    to_verify: list[str]
    facts: dict[str, Any]
    sla_class: str | None
    review_steps: list[str]
    checks: list[CheckView] = Field(default_factory=list, description="intake answers missing: to verify")
    parameters: str | None = Field(default=None, description="the rule parameter set applied, `id@vN`")
    payer_basis: str = Field(default="place_of_hardship", description="or `habitual_residence` (P5.2b)")
    start_on: StoredDay | None
    end_on: StoredDay | None
    approved_on: StoredDay | None
    signed_by: list[str]
    signed_by_shown: list[str] = Field(default_factory=list, description="each signer as shown: 显示名（账号）")
    emergency: bool = False
    emergency_reasons: list[str] = Field(default_factory=list, description="the hotline triage's rules: `T-FIRE: …`")
    paid_periods: list[str]
    payments: int
    decisions: list[DecisionView]
    created_at: Timestamp | None
    updated_at: Timestamp | None
    version: int
    applicant: ApplicantView | None = None

    @classmethod
    def of(cls, entitlement: Entitlement, **extra: Any) -> EntitlementView:
        return cls.model_validate(entitlement.to_document() | extra)


class DuePeriod(View):
    period: str
    amount: str


class EntitlementDetail(EntitlementView):
    """One entitlement; a monthly grant lists `due_periods`: months payable now and not yet paid."""

    due_periods: list[DuePeriod]

    @classmethod
    def with_due(
        cls, entitlement: Entitlement, due: list[tuple[str, Decimal]], applicant: ApplicantView | None = None
    ) -> EntitlementDetail:
        periods = [{"period": period, "amount": as_str(amount)} for period, amount in due]
        return cls.model_validate(entitlement.to_document() | {"due_periods": periods, "applicant": applicant})


# ------------------------------------------------------------------------ the ledger


class LedgerEntryView(View):
    """One payment (P6.1)."""

    idempotency_key: str
    entitlement_id: str | None = None
    case_id: str | None = None
    rule_id: str
    period: str
    run_id: str | None = None
    recipient_id: str
    district: str
    category: str | None = None
    funding_source: str | None = Field(
        default=None, description="P1.3: city_district_finance or unemployment_insurance_fund"
    )
    amount: StoredYuan
    amount_fen: int
    payment_reference: str
    recorded_by: str
    recorded_by_shown: str | None = None
    recorded_at: Timestamp

    @classmethod
    def of(cls, entry: LedgerEntry) -> LedgerEntryView:
        return cls.model_validate(entry.to_document())


def _total(entries: list[LedgerEntry]) -> str:
    return str(yuan(sum((e.amount for e in entries), Decimal(0))))


class PaymentRecorded(View):
    created: bool
    entry: LedgerEntryView


class CaseLedger(View):
    case_id: str
    entries: list[LedgerEntryView]
    total_yuan: str

    @classmethod
    def of(cls, case_id: str, entries: list[LedgerEntry]) -> CaseLedger:
        return cls(case_id=case_id, entries=[LedgerEntryView.of(e) for e in entries], total_yuan=_total(entries))


class RecipientLedger(View):
    recipient_id: str
    entries: list[LedgerEntryView]
    total_yuan: str

    @classmethod
    def of(cls, recipient_id: str, entries: list[LedgerEntry]) -> RecipientLedger:
        return cls(
            recipient_id=recipient_id, entries=[LedgerEntryView.of(e) for e in entries], total_yuan=_total(entries)
        )


class PersonLedger(View):
    recipient_ids: list[str]
    entries: list[LedgerEntryView]
    total_yuan: str

    @classmethod
    def of(cls, recipient_ids: list[str], entries: list[LedgerEntry]) -> PersonLedger:
        return cls(
            recipient_ids=recipient_ids, entries=[LedgerEntryView.of(e) for e in entries], total_yuan=_total(entries)
        )


# ------------------------------------------------------------------------ registry


class RowError(View):
    field: str
    reason_zh: str
    reason_en: str


class RejectedRow(View):
    line: int | None
    recipient_id: str | None
    errors: list[RowError]


class ImportSummary(View):
    """A registry import: rows read, rows kept, and each bad row named."""

    rows: int
    accepted: int
    rejected: list[RejectedRow]

    @classmethod
    def of(cls, report: ImportReport) -> ImportSummary:
        return cls.model_validate({"rows": report.rows, "accepted": len(report.accepted), "rejected": report.rejected})


class RegistryRecordView(View):
    """A registry record (the ID-card number masked, its hash not shown)."""

    id: str = Field(alias="_id")
    name: str | None = None
    id_card_masked: str | None = None
    district: str
    area: str
    categories: list[str]
    approved_on: StoredDay
    ended_on: StoredDay | None = None
    source_case_id: str | None = None
    members: int | None = None
    hospitalised: int | None = None

    @classmethod
    def of(cls, record: RegistryRecord) -> RegistryRecordView:
        return cls.model_validate(record.to_document())


# ------------------------------------------------------------------------ subsidy runs


class RunExecutionView(View):
    by: str
    started_at: Timestamp
    scanned: int
    eligible: int
    inserted: int
    seconds: float


class RunView(View):
    """A subsidy run (P1.3, P2.1): its terms, status, totals and executions."""

    id: str = Field(alias="_id")
    kind: str
    provision: str
    month: str
    label: str
    scope: str
    districts: list[str]
    amounts: dict[str, str]
    due_on: str
    pay_before: str | None = None
    status: str
    opened_by: str
    opened_at: Timestamp
    paid_count: int
    paid_fen: int
    eligible: int | None = None
    last_started_at: Timestamp | None = None
    last_finished_at: Timestamp | None = None
    executions: list[RunExecutionView] = Field(default_factory=list)

    @classmethod
    def of(cls, run: SubsidyRun) -> RunView:
        return cls.model_validate(run.model_dump(exclude_unset=True, by_alias=True))


class RunDetail(RunView):
    ledger_count: int

    @classmethod
    def counted(cls, run: SubsidyRun, ledger_count: int) -> RunDetail:
        return cls.model_validate(run.model_dump(exclude_unset=True, by_alias=True) | {"ledger_count": ledger_count})


class RunStarted(View):
    run_id: str
    status: str


# ------------------------------------------------------------------------ standards


class StandardView(View):
    """A district's dibao standards from a date on."""

    district: str
    effective_from: date
    urban: Decimal
    rural: Decimal
    source: str

    @classmethod
    def of(cls, standard: DibaoStandard) -> StandardView:
        return cls.model_validate(standard.model_dump())


class AddedStandard(StandardView):
    added_by: str


class RuleParametersView(View):
    """The relief rules' parameter set in force on a day (P5.1, P5.2a-c), cited by decisions as `cite`."""

    cite: str
    on: date
    parameters: RuleParameters
    added_by: str | None = None

    @classmethod
    def of(cls, parameters: RuleParameters, on: date, added_by: str | None = None) -> RuleParametersView:
        return cls(cite=parameters.cite, on=on, parameters=parameters, added_by=added_by)
