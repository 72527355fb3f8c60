"""Relief's two aggregates and how they are stored: the case (its help part, its dispatch part, the record
of its evaluation) and the entitlement (with its event outbox). Both are written only through the shared
write path, `common.aggregates.Aggregates` (read, pure change, claim the next version, write with the
outbox, publish, mark the outbox published); `cases_of` and `entitlements_of` build them.

The stored documents keep the fields the API and the queries read (`status`, `district`, `case_id`, …);
the write path adds `version`, `updated_at` and `outbox_pending`. An entitlement's outbox entries are
`outbox_item`s: the event as JSON with its kind (`grant` for `relief.grant-events.v1`, `hukou` for
`relief.hukou-district-notified.v1`), turned back into contract events by `from_outbox`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from common.aggregates import Aggregates, Codec
from common.errors import NotFound
from contracts.events.base import utcnow
from contracts.events.relief import HukouDistrictNotified, grant_event
from services.relief.domain.lifecycle import Conflict

Doc = dict[str, Any]
Publish = Callable[[Sequence[tuple[str, list[Doc]]]], Awaitable[None]]


# ---------------------------------------------------------------------------- the case


@dataclass(frozen=True)
class ReliefCase:
    """What relief knows of a case: the caller's facts (`help`, from HelpRequested), the place of hardship
    (`dispatch`, from CaseDispatched), and which rules it was evaluated by (`evaluation`: at, rules)."""

    id: str
    help: Doc | None = None
    dispatch: Doc | None = None
    evaluation: Doc | None = None
    version: int = 0

    @property
    def ready(self) -> bool:
        """Both parts known: the rules can evaluate it."""
        return bool(self.help) and bool(self.dispatch)

    def with_part(self, part: str, value: Doc) -> ReliefCase:
        return dataclasses.replace(self, **{part: value})

    @staticmethod
    def from_document(doc: Doc) -> ReliefCase:
        return ReliefCase(
            id=doc["_id"],
            help=doc.get("help"),
            dispatch=doc.get("dispatch"),
            evaluation=doc.get("evaluation"),
            version=doc.get("version", 0),
        )

    def to_document(self) -> Doc:
        return {
            "_id": self.id,
            "help": self.help,
            "dispatch": self.dispatch,
            "evaluation": self.evaluation,
            "version": self.version,
            "outbox": [],
        }


CASE_CODEC: Codec[ReliefCase] = Codec(ReliefCase.from_document, ReliefCase.to_document)


# ---------------------------------------------------------------------------- the entitlement


@dataclass(frozen=True)
class Entitlement:
    """One (case, rule) proposal or grant, as stored (`services/relief/README.md`, lifecycle and ledger)."""

    id: str
    case_id: str
    rule_id: str
    need: str
    status: str
    schedule: str
    amount_kind: str
    district: str
    recipient_id: str
    provisions: list[str] = field(default_factory=list)
    amount: str | None = None
    cap: str | None = None
    four_eyes_above: str | None = None
    hukou_notice_district: str | None = None
    id_card_hash: str | None = None
    area: str | None = None
    reasons: list[str] = field(default_factory=list)
    to_verify: list[str] = field(default_factory=list)
    facts: Doc = field(default_factory=dict)
    sla_class: str | None = None
    review_steps: list[str] = field(default_factory=list)
    start_on: str | None = None
    end_on: str | None = None
    approved_on: str | None = None
    signed_by: list[str] = field(default_factory=list)
    paid_periods: list[str] = field(default_factory=list)
    payments: int = 0
    decisions: list[Doc] = field(default_factory=list)
    outbox: list[Doc] = field(default_factory=list)  # events not yet published (`outbox_item`)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    version: int = 0

    def decided(self, fields: Doc, decision: Doc | None, events: Sequence[Any] = ()) -> Entitlement:
        """A copy with `fields` set, the decision appended and the events queued in the outbox."""
        return dataclasses.replace(
            self,
            **fields,
            decisions=[*self.decisions, *([decision] if decision is not None else [])],
            outbox=[*self.outbox, *(outbox_item(e) for e in events)],
        )

    @staticmethod
    def from_document(doc: Doc) -> Entitlement:
        names = {f.name for f in dataclasses.fields(Entitlement)} - {"id"}
        return Entitlement(id=doc["_id"], **{k: v for k, v in doc.items() if k in names})

    def to_document(self) -> Doc:
        doc = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        doc["_id"] = doc.pop("id")
        return doc


ENTITLEMENT_CODEC: Codec[Entitlement] = Codec(Entitlement.from_document, Entitlement.to_document)


def outbox_item(event: Any) -> Doc:
    kind = "hukou" if isinstance(event, HukouDistrictNotified) else "grant"
    return {"event_id": str(event.event_id), "kind": kind, "queued_at": utcnow(), "body": event.model_dump(mode="json")}


def from_outbox(item: Doc) -> Any:
    if item["kind"] == "hukou":
        return HukouDistrictNotified.model_validate(item["body"])
    return grant_event.validate_python(item["body"])


# ---------------------------------------------------------------------------- the write paths


def cases_of(db: AsyncDatabase[Doc]) -> Aggregates[ReliefCase]:
    """Relief's cases through the shared write path (they carry no events: nothing to publish)."""
    return Aggregates(db["cases"], db["case_claims"], CASE_CODEC)


def entitlements_of(db: AsyncDatabase[Doc], publish: Publish | None) -> Aggregates[Entitlement]:
    """Relief's entitlements through the shared write path; `publish` sends their outbox entries (None: the
    entries wait for the service's outbox sweeper, e.g. when a subsidy run is executed from the command line)."""
    return Aggregates(db["entitlements"], db["entitlement_claims"], ENTITLEMENT_CODEC, publish)


def decide_on(
    version: int, fields: Doc, decision: Doc, events: Sequence[Any]
) -> Callable[[Entitlement | None], Entitlement]:
    """A decision taken on `version` of an entitlement: refused (409) if it changed since."""

    def change(current: Entitlement | None) -> Entitlement:
        if current is None or current.version != version:
            raise Conflict(
                "该事项刚被他人处理，请刷新后重试",
                "someone else changed this entitlement: reload and retry",
                code="concurrent_change",
            )
        return current.decided(fields, decision, events)

    return change


def mark_paid(
    period: str, fields: Doc, decision: Doc, events: Sequence[Any]
) -> Callable[[Entitlement | None], Entitlement | None]:
    """Mark `period` paid once: a retry or a concurrent call finds it paid and changes nothing."""

    def change(current: Entitlement | None) -> Entitlement | None:
        if current is None:
            raise NotFound("未找到该救助事项", "no such entitlement")
        if period in current.paid_periods:
            return None
        paid = current.decided(fields, decision, events)
        return dataclasses.replace(paid, paid_periods=[*current.paid_periods, period], payments=current.payments + 1)

    return change


def create_only(new: Entitlement) -> Callable[[Entitlement | None], Entitlement | None]:
    """Create the entitlement if there is none (once per case and rule); otherwise leave it as it is."""
    return lambda current: new if current is None else None
