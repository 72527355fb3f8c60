"""What the officer's desk routes take and give (`services.relief.desk`): a phone revealed, the payments due
to the bank, the report of a bank return file, a page of the registry, the P5.2d notices. The
entitlement views and their applicant are in `services.relief.schemas`."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from services.relief.documents import StoredYuan
from services.relief.schemas import ApplicantView, RegistryRecordView, RowError

Timestamp = Annotated[datetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RevealReason(Body):
    reason: str = Field(min_length=2, max_length=200, description="why the phone is read (kept in the audit trail)")


class Acknowledge(Body):
    note: str = Field(default="", max_length=2000)


class View(BaseModel):
    model_config = ConfigDict(populate_by_name=True)


class PhoneRevealed(View):
    entitlement_id: str
    case_id: str
    phone: str
    revealed_at: Timestamp


class PendingPayment(View):
    """A period the bank is to pay: what the payment file's row holds, the ID-card number masked here."""

    reference: str
    entitlement_id: str
    case_id: str
    rule_id: str
    period: str
    amount: StoredYuan
    district: str
    payee_name: str
    id_card_masked: str


class PendingPayments(View):
    """The approved-and-unpaid periods of the officer's district; `without_payee`: grants left out of the
    file because relief has no applicant with an ID-card number for them (pay those by hand)."""

    rows: list[PendingPayment]
    total_yuan: str
    without_payee: list[str]


class ReturnLine(View):
    line: int
    reference: str
    outcome: str
    message_zh: str
    message_en: str
    amount: str | None = None
    expected_amount: str | None = None
    bank_transaction_id: str | None = None
    errors: list[RowError] = Field(default_factory=list)


class EarlierImport(View):
    at: Timestamp
    by: str


class ReturnReport(View):
    """What a bank return file did, row by row (line numbers as in the file, the header is line 1)."""

    filename: str
    rows: int
    changed: int = Field(description="payments recorded by this import; 0: nothing changed")
    counts: dict[str, int]
    lines: list[ReturnLine]
    earlier_import: EarlierImport | None = Field(default=None, description="the same file was imported before")
    message_zh: str
    message_en: str


class RegistryPage(View):
    items: list[RegistryRecordView]
    total: int
    page: int
    page_size: int


class Acknowledgement(View):
    by: str
    shown_as: str
    at: Timestamp
    note: str = ""


class HukouNotice(View):
    """A P5.2d notice: the place of hardship paid a person whose hukou is in another district."""

    grant_id: str
    case_id: str
    rule_id: str
    paying_district: str
    hukou_district: str
    amount: str | None = None
    notified_at: Timestamp | None = None
    status: str
    applicant: ApplicantView | None = None
    acknowledged: Acknowledgement | None = None


class Acknowledged(View):
    created: bool
    notice: HukouNotice
