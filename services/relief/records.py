"""Relief's stored records that are not aggregates (`services.relief.documents` holds those): ledger
entries (append-only), registry records (replaced whole by an import), subsidy runs and their executions.

Each is a pydantic model whose document is the shape already stored: amounts as strings to the fen plus
integer fen for sums, days as ISO strings, the id as `_id`. A record keeps the fields it was written with
(`exclude_unset`): a case payment has no `category`, a run document gains `eligible` when it completes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.relief.documents import StoredDay, StoredYuan
from services.relief.domain.registry import RegistryRow

Doc = dict[str, Any]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    def to_document(self) -> Doc:
        """The document as written: the fields this record was made or read with."""
        return self.model_dump(exclude_unset=True, by_alias=True)


class LedgerEntry(Record):
    """One payment (P6.1), recorded once per idempotency key: `case|rule|period` or `run|recipient`."""

    idempotency_key: str
    entitlement_id: str | None = None
    case_id: str | None = None
    rule_id: str
    period: str
    run_id: str | None = None
    recipient_id: str
    district: str
    category: str | None = None  # subsidy runs: the category the recipient was paid for
    # Who funds it (P1.3): city_district_finance or unemployment_insurance_fund; older entries: none.
    funding_source: str | None = None
    amount: StoredYuan
    amount_fen: int
    payment_reference: str
    recorded_by: str
    recorded_by_shown: str | None = None  # "显示名（账号）"; entries recorded before names were kept: none
    recorded_at: datetime


class RegistryRecord(Record):
    """A recipient in the low-income population database (P2.3); the ID-card number only hashed and masked."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(alias="_id")
    name: str | None = None
    id_card_hash: str | None = None
    id_card_masked: str | None = None
    district: str
    area: str
    categories: list[str] = Field(default_factory=list)
    approved_on: StoredDay
    ended_on: StoredDay | None = None
    source_case_id: str | None = None  # entered by the approval of a P5.1 dibao application
    members: int | None = None  # the household's size, when the registry file gives it
    hospitalised: int | None = None  # members in hospital now, when the registry file gives it (P2.3)

    @staticmethod
    def of_row(row: RegistryRow) -> RegistryRecord:
        return RegistryRecord.model_validate(row.document())


class Applicant(Record):
    """The caller of a case as the hotline recorded them (`HelpRequested.caller`): who a grant pays (P5.2,
    P6.1). Written once per case (insert-only, `_id` the case id). The ID-card and phone numbers are kept
    in clear only because the bank pays against them and an officer may call back; they are read in clear
    only by the payment export and a phone reveal, both audited, and lists read the masked forms."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    case_id: str = Field(alias="_id")
    name: str
    id_card: str | None = None
    id_card_masked: str | None = None
    id_card_hash: str | None = None
    phone: str | None = None
    phone_masked: str | None = None
    hukou_district: str | None = None
    household_status: str
    special_groups: list[str] = Field(default_factory=list)
    place_district: str | None = None
    event_id: str
    recorded_at: datetime


class HukouAcknowledgement(Record):
    """A hukou district's officer read a P5.2d notice (insert-only, `_id` the grant id: once per notice)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    grant_id: str = Field(alias="_id")
    hukou_district: str
    by: str
    shown_as: str
    at: datetime
    note: str = ""


class ReturnImport(Record):
    """One import of a bank return file (insert-only): who, when, which file (its SHA-256) and what each row
    did, kept for supervision (P6.1)."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(alias="_id")
    file_sha256: str
    filename: str
    district: str | None
    by: str
    shown_as: str
    at: datetime
    rows: int
    changed: int
    outcomes: dict[str, int]
    lines: list[Doc] = Field(default_factory=list)


class RunExecution(Record):
    """One execution of a subsidy run (several may run at once, each keeps its record)."""

    by: str
    started_at: datetime
    scanned: int
    eligible: int
    inserted: int
    seconds: float


class SubsidyRun(Record):
    """A subsidy run (P1.3, P2.1) as opened, with what its executions left; `executions` are read from their
    own collection."""

    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    id: str = Field(alias="_id")
    kind: str
    provision: str
    month: str
    label: str
    scope: str
    districts: list[str]
    amounts: dict[str, str]
    due_on: str
    pay_before: str | None = None  # a pre-holiday run (P2.1): the festival day, paid the day before at the latest
    status: str
    opened_by: str
    opened_at: datetime
    paid_count: int = 0
    paid_fen: int = 0
    eligible: int | None = None
    last_started_at: datetime | None = None
    last_finished_at: datetime | None = None
    executions: list[RunExecution] = Field(default_factory=list)

    def to_document(self) -> Doc:
        return self.model_dump(exclude_unset=True, by_alias=True, exclude={"executions"})
