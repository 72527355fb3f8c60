"""Relief's two aggregates and how they are stored: the case (its help part, its dispatch part, the record
of its evaluation) and the entitlement (with its event outbox). Both are pydantic models written only
through the shared write path, `common.aggregates.Aggregates` (read, pure change, claim the next version,
write with the outbox, publish, mark the outbox published); `cases_of` and `entitlements_of` build them.

The stored documents keep the fields the API and the queries read (`status`, `district`, `case_id`, …):
amounts as strings to the fen, days as ISO strings, the id as `_id`; the write path adds `version`,
`updated_at` and `outbox_pending`. An entitlement's outbox entries are `outbox_item`s: the event as JSON
with its kind (`grant` for `relief.grant-events.v1`, `hukou` for `relief.hukou-district-notified.v1`),
turned back into contract events by `from_outbox`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Any, TypedDict

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pymongo.asynchronous.database import AsyncDatabase

from common.aggregates import Aggregates, Codec, Entry
from common.errors import NotFound
from contracts.events.base import utcnow
from contracts.events.relief import GrantEvent, HukouDistrictNotified, grant_event
from services.relief.domain.lifecycle import Conflict, Status
from services.relief.domain.money import as_str
from services.relief.domain.rules import AmountKind, Schedule

Doc = dict[str, Any]
Publish = Callable[[Sequence[tuple[str, list[Entry]]]], Awaitable[None]]
OutboxEvent = GrantEvent | HukouDistrictNotified

# How a value is stored (and shown): yuan as a string to the fen (FerretDB has no Decimal128), a day as
# its ISO string (BSON has no date without a time).
StoredYuan = Annotated[Decimal, PlainSerializer(as_str, return_type=str)]
StoredDay = Annotated[date, PlainSerializer(date.isoformat, return_type=str)]


# ---------------------------------------------------------------------------- the case


class HelpPart(BaseModel):
    """The caller's facts, from HelpRequested."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    needs: list[str]
    place_district: str | None = None
    hukou_district: str | None = None
    household_status: str
    special_groups: list[str] = Field(default_factory=list)
    months_without_income: int | None = None
    reported_on: StoredDay
    id_card_hash: str | None = None
    # The hotline's life-safety triage (P2.2): whether the call is an emergency and which rules said so.
    emergency: bool = False
    emergency_reasons: list[str] = Field(default_factory=list)
    event_id: str
    # The intake's typed answers of the needs (HelpRequested.attributes), which the rules read.
    attributes: dict[str, str | float | list[str]] = Field(default_factory=dict)


class DispatchPart(BaseModel):
    """The place of hardship (the paying district) and the needs, from CaseDispatched."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    district: str
    needs: list[str]
    lead: Doc  # the lead assignment as the router sent it
    sla_class: str | None = None
    emergency: bool = False  # the router's view: triage, the operator's urgency or an emergency SLA class
    event_id: str


class Evaluation(BaseModel):
    """When the rules evaluated the case and which rules proposed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    at: datetime
    rules: list[str]


class ReliefCase(BaseModel):
    """What relief knows of a case: the caller's facts (`help`), the place of hardship (`dispatch`), and
    which rules it was evaluated by (`evaluation`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    help: HelpPart | None = None
    dispatch: DispatchPart | None = None
    evaluation: Evaluation | None = None
    version: int = 0

    @property
    def ready(self) -> bool:
        """Both parts known: the rules can evaluate it."""
        return self.help is not None and self.dispatch is not None

    @property
    def emergency(self) -> bool:
        """An emergency case by the hotline's triage or the router's dispatch."""
        return bool((self.help and self.help.emergency) or (self.dispatch and self.dispatch.emergency))

    @property
    def emergency_reasons(self) -> list[str]:
        """The triage rules that made it one (`T-FIRE: ...`); empty when only the router said so."""
        return list(self.help.emergency_reasons) if self.help else []

    @staticmethod
    def from_document(doc: Doc) -> ReliefCase:
        return ReliefCase.model_validate({**doc, "id": doc["_id"]})

    def to_document(self) -> Doc:
        return {"_id": self.id, **self.model_dump(exclude={"id"}), "outbox": []}


CASE_CODEC: Codec[ReliefCase] = Codec(ReliefCase.from_document, ReliefCase.to_document)


# ---------------------------------------------------------------------------- the entitlement


class Decision(BaseModel):
    """One decision on an entitlement (P6.3): who, when, by which rule, on which facts, and its details.
    Stored as recorded: the fields a decision did not set are left out of its document."""

    model_config = ConfigDict(frozen=True, extra="allow")

    action: str
    by: str
    shown_as: str | None = None  # how `by` is shown: "显示名（账号）" (older decisions: the id alone, in `by`)
    at: datetime | None = None
    role: str | None = None
    district: str | None = None
    rule_id: str | None = None
    facts: Doc | None = None
    note: str | None = None
    reasons: list[str] | None = None
    amount: str | None = None
    period: str | None = None
    payment_reference: str | None = None
    discharged_on: str | None = None
    contested: bool | None = None
    steps: list[str] | None = None
    parameters: str | None = None  # the rule parameter set the decision applied, `id@vN`

    def to_document(self) -> Doc:
        return self.model_dump(exclude_unset=True)


class Changes(TypedDict, total=False):
    """The fields a decision sets on an entitlement (`Entitlement.decided`)."""

    status: Status
    amount: Decimal | None
    signed_by: list[str]
    signed_by_shown: list[str]
    start_on: date | None
    end_on: date | None
    approved_on: date | None
    sla_class: str | None
    updated_at: datetime


class Entitlement(BaseModel):
    """One (case, rule) proposal or grant, as stored (`services/relief/README.md`, lifecycle and ledger)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    id: str
    case_id: str
    rule_id: str
    need: str
    status: Status
    schedule: Schedule
    amount_kind: AmountKind
    district: str
    recipient_id: str
    provisions: list[str] = Field(default_factory=list)
    amount: StoredYuan | None = None
    cap: StoredYuan | None = None
    four_eyes_above: StoredYuan | None = None
    hukou_notice_district: str | None = None
    id_card_hash: str | None = None
    area: str | None = None
    reasons: list[str] = Field(default_factory=list)
    to_verify: list[str] = Field(default_factory=list)
    facts: Doc = Field(default_factory=dict)
    sla_class: str | None = None
    review_steps: list[str] = Field(default_factory=list)
    # Intake answers the rule needed and did not get, for the officer to verify: {field, reason_zh, reason_en}.
    checks: list[dict[str, str]] = Field(default_factory=list)
    parameters: str | None = None  # the rule parameter set the proposal used, `id@vN`
    payer_basis: str = "place_of_hardship"  # or "habitual_residence" (P5.2b)
    start_on: StoredDay | None = None
    end_on: StoredDay | None = None
    approved_on: StoredDay | None = None
    signed_by: list[str] = Field(default_factory=list)  # account ids: the four-eyes check compares these
    # How each signer of `signed_by` is shown ("显示名（账号）"), in the same order; older records: none.
    signed_by_shown: list[str] = Field(default_factory=list)
    emergency: bool = False  # the case is an emergency (hotline triage or router), so the page puts it first
    emergency_reasons: list[str] = Field(default_factory=list)
    paid_periods: list[str] = Field(default_factory=list)
    payments: int = 0
    decisions: list[Decision] = Field(default_factory=list)
    outbox: list[Entry] = Field(default_factory=list)  # events not yet published (`outbox_item`)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0

    def decided(self, changes: Changes, decision: Decision | None, events: Sequence[OutboxEvent] = ()) -> Entitlement:
        """A copy with `changes` set, the decision appended and the events queued in the outbox."""
        return self.model_copy(
            update={
                **changes,
                "decisions": [*self.decisions, *([decision] if decision is not None else [])],
                "outbox": [*self.outbox, *(outbox_item(e) for e in events)],
            }
        )

    @staticmethod
    def from_document(doc: Doc) -> Entitlement:
        return Entitlement.model_validate({**doc, "id": doc["_id"]})

    def to_document(self) -> Doc:
        doc = {"_id": self.id, **self.model_dump(exclude={"id", "decisions"})}
        doc["decisions"] = [d.to_document() for d in self.decisions]
        return doc


ENTITLEMENT_CODEC: Codec[Entitlement] = Codec(Entitlement.from_document, Entitlement.to_document)


def outbox_item(event: OutboxEvent) -> Entry:
    kind = "hukou" if isinstance(event, HukouDistrictNotified) else "grant"
    return {"event_id": str(event.event_id), "kind": kind, "queued_at": utcnow(), "body": event.model_dump(mode="json")}


def from_outbox(item: Entry) -> OutboxEvent:
    if item["kind"] == "hukou":
        return HukouDistrictNotified.model_validate(item["body"])
    event: GrantEvent = grant_event.validate_python(item["body"])
    return event


# ---------------------------------------------------------------------------- the write paths


# What leaves the working set once unchanged for the archive age: a case the rules have evaluated, and a
# grant nothing more will be done with (a monthly grant stopped may still have a last part-month to pay;
# an approved one is still to pay, a P5.1 review's by a run). Once evaluated, a case's handling is its
# grants': nothing but a late event of the case reads it (through the write path, which brings it back),
# so it need not wait for them (a P5.2a grant stopped is never final, and would keep its case forever).
CASE_FINISHED: Doc = {"evaluation": {"$ne": None}}
ENTITLEMENT_FINAL = ("cancelled", "paid", "rejected")
ENTITLEMENT_FINISHED: Doc = {"status": {"$in": list(ENTITLEMENT_FINAL)}}


def cases_of(db: AsyncDatabase[Doc], archive_after: timedelta | None = None) -> Aggregates[ReliefCase]:
    """Relief's cases through the shared write path (they carry no events: nothing to publish)."""
    return Aggregates(
        db["cases"],
        db["case_claims"],
        CASE_CODEC,
        archive=db["cases_archive"],
        archive_after=archive_after,
        finished=CASE_FINISHED,
    )


def entitlements_of(
    db: AsyncDatabase[Doc], publish: Publish | None, archive_after: timedelta | None = None
) -> Aggregates[Entitlement]:
    """Relief's entitlements through the shared write path; `publish` sends their outbox entries (None: the
    entries wait for the service's outbox sweeper, e.g. when a subsidy run is executed from the command line)."""
    return Aggregates(
        db["entitlements"],
        db["entitlement_claims"],
        ENTITLEMENT_CODEC,
        publish,
        archive=db["entitlements_archive"],
        archive_after=archive_after,
        finished=ENTITLEMENT_FINISHED,
    )


def decide_on(
    version: int, changes: Changes, decision: Decision, events: Sequence[OutboxEvent]
) -> Callable[[Entitlement | None], Entitlement]:
    """A decision taken on `version` of an entitlement: refused (409) if it changed since."""

    def change(current: Entitlement | None) -> Entitlement:
        if current is None or current.version != version:
            raise Conflict(
                "该事项刚被他人处理，请刷新后重试",
                "someone else changed this entitlement: reload and retry",
                code="concurrent_change",
            )
        return current.decided(changes, decision, events)

    return change


def mark_paid(
    period: str, changes: Changes, decision: Decision, events: Sequence[OutboxEvent]
) -> Callable[[Entitlement | None], Entitlement | None]:
    """Mark `period` paid once: a retry or a concurrent call finds it paid and changes nothing."""

    def change(current: Entitlement | None) -> Entitlement | None:
        if current is None:
            raise NotFound("未找到该救助事项", "no such entitlement")
        if period in current.paid_periods:
            return None
        paid = current.decided(changes, decision, events)
        return paid.model_copy(
            update={"paid_periods": [*current.paid_periods, period], "payments": current.payments + 1}
        )

    return change


def create_only(new: Entitlement) -> Callable[[Entitlement | None], Entitlement | None]:
    """Create the entitlement if there is none (once per case and rule); otherwise leave it as it is."""
    return lambda current: new if current is None else None
