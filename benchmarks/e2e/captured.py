"""Relief and notify writing their history into memory: each service's own code (relief's `CaseIntake`
and its officers' decisions, `Relief.approve` / `reject` / `pay`; notify's `Clockwork.fold`) runs unchanged
over memory that keeps what it would have written, so the documents can then go to the real store in bulk
(`insert_many`): the same documents, without tens of thousands of single updates, each of which scans a
growing collection on FerretDB."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, tzinfo
from typing import Any
from unittest import mock

from common.aggregates import Codec, Outcome, Written
from contracts.events import BUSINESS_TZ
from contracts.events import base as event_base
from contracts.events.hotline import HelpRequested
from services.notify.clockwork import CODEC, Clockwork, NotifyCase
from services.notify.domain import case as case_rules
from services.notify.domain.policy import load_policy
from services.notify.store import NotifyStore
from services.relief import subsidies
from services.relief.app import load_standards_book
from services.relief.documents import CASE_CODEC, ENTITLEMENT_CODEC, Entitlement
from services.relief.records import LedgerEntry
from services.relief.service import Relief
from services.relief.settings import Settings as ReliefSettings

Doc = dict[str, Any]


class MemoryAggregates:
    """The shared write path's `change_many` over a dict: the same pure changes and codec, the documents
    kept in memory for a bulk insert."""

    def __init__(self, codec: Codec[Any]) -> None:
        self.codec = codec
        self.docs: dict[str, Doc] = {}

    async def current(self, ids: Sequence[str], *, new: Collection[str] = ()) -> dict[str, Any]:
        return {doc_id: self.codec.load(self.docs[doc_id]) for doc_id in ids if doc_id in self.docs}

    async def change(self, doc_id: str, change: Callable[[Any], Any]) -> Written[Any] | None:
        """One change (`Aggregates.change`): the document as written, or None if nothing changed."""
        return (await self.change_many({doc_id: change})).written.get(doc_id)

    async def change_many(
        self, changes: Mapping[str, Callable[[Any], Any]], *, new: Collection[str] = ()
    ) -> Outcome[Any]:
        outcome: Outcome[Any] = Outcome()
        for doc_id, change in changes.items():
            stored = self.docs.get(doc_id)
            new = change(self.codec.load(stored) if stored is not None else None)
            if new is None:
                outcome.unchanged.add(doc_id)
                continue
            doc = {**(stored or {}), **self.codec.dump(new)}
            doc.update(version=(stored or {}).get("version", 0) + 1, updated_at=datetime.now(UTC), outbox_pending=False)
            self.docs[doc_id] = doc
            outcome.written[doc_id] = Written(doc_id, self.codec.load(doc), doc["version"], stored is None)
        return outcome


class ReliefMemory:
    """The part of `ReliefStore` that case intake and the officers' decisions read, its two write paths and
    its payment ledger, in memory. (An approved dibao application enters the registry only with an ID-card
    number, which the history's callers do not give: no decision here writes the registry.)"""

    def __init__(self, db: Any) -> None:
        self.db = db  # only named, never used: the write paths below replace the service's
        self.archive_after = None  # as ReliefStore's (the write paths are replaced too)
        self.case_path = MemoryAggregates(CASE_CODEC)
        self.entitlement_path = MemoryAggregates(ENTITLEMENT_CODEC)
        self.cases = self.case_path.docs
        self.entitlements = self.entitlement_path.docs
        self.applicants: dict[str, Doc] = {}
        self.ledger: dict[str, Doc] = {}  # by idempotency key, as the store's unique index keeps it

    async def get_entitlement(self, entitlement_id: str) -> Entitlement | None:
        doc = self.entitlements.get(entitlement_id)
        return ENTITLEMENT_CODEC.load(doc) if doc is not None else None

    async def ledger_entry(self, idempotency_key: str) -> LedgerEntry | None:
        doc = self.ledger.get(idempotency_key)
        return LedgerEntry.model_validate(doc) if doc is not None else None

    async def append_ledger(self, entry: LedgerEntry) -> tuple[bool, LedgerEntry]:
        """A payment once per idempotency key (`ReliefStore.append_ledger`): a repeat returns the entry there."""
        if (existing := await self.ledger_entry(entry.idempotency_key)) is not None:
            return False, existing
        self.ledger[entry.idempotency_key] = entry.to_document()
        return True, entry

    async def registry_by_id_hashes(self, hashes: list[str]) -> dict[str, Doc]:
        return {}  # the history's callers are not in the low-income registry

    async def added_standards(self) -> list[Doc]:
        return []

    async def added_dated_data(self, *, cached: bool = False) -> tuple[list[Any], list[Any]]:
        return [], []  # nothing an admin added: the shipped standards and rule parameters

    async def add_applicants(self, applicants: Sequence[Any]) -> int:
        """The applicants of new cases, kept for a bulk insert (the first of a case stays, as in the store)."""
        fresh = [a.to_document() for a in applicants if a.case_id not in self.applicants]
        for doc in fresh:
            self.applicants[doc["_id"]] = doc
        return len(fresh)


def relief_intake(db: Any) -> tuple[Relief, ReliefMemory]:
    settings = ReliefSettings()
    memory = ReliefMemory(db)
    relief = Relief(
        store=memory,  # type: ignore[arg-type]  # an in-memory stand-in for the part of ReliefStore intake uses
        book=load_standards_book(settings),
        broker=None,
        four_eyes_above=settings.major_second_approval_above_yuan,
        part_month_policy=settings.part_month_policy,
        id_hash_salt=settings.id_hash_salt.get_secret_value(),
    )
    # In-memory stand-ins for the service's write paths (the same `change_many` over a dict).
    relief.cases, relief.entitlements = memory.case_path, memory.entitlement_path  # type: ignore[assignment]  # in memory
    return relief, memory


class _Stopped:
    """`datetime` as `contracts.events.utcnow` and the subsidy runs read it, stopped at one moment."""

    def __init__(self, moment: datetime) -> None:
        self.moment = moment

    def now(self, tz: tzinfo | None = None) -> datetime:
        return self.moment.astimezone(tz)


@contextmanager
def relief_at(relief: Relief, moment: datetime) -> Iterator[None]:
    """Relief acting at `moment` of the history rather than now: its business day (`Relief.clock`, which
    dates approvals and the months due) and the time its decisions, ledger entries and events are stamped
    with (`contracts.events.utcnow`, which they take, and `services.relief.subsidies` read `datetime.now`
    of their modules: stopped here while relief's code runs over memory, which never waits on anything
    else)."""
    day = moment.astimezone(BUSINESS_TZ).date()
    stopped = _Stopped(moment)
    before = relief.clock
    relief.clock = lambda: day
    try:
        with mock.patch.object(event_base, "datetime", stopped), mock.patch.object(subsidies, "datetime", stopped):
            yield
    finally:
        relief.clock = before


def published(entitlement: Doc) -> list[Doc]:
    """The entitlement's events, taken out of its outbox as a successful publish would have."""
    items, entitlement["outbox"] = entitlement.get("outbox", []), []
    return [item["body"] for item in items]


class NotifyHistory:
    """Notify's clockwork folding a history's events in memory (`Clockwork.fold`, the change its write path
    applies), its effects (timers placed and cancelled, phones forgotten) kept in memory too: the case
    documents the service would have written, ready to insert in bulk."""

    def __init__(self, db: Any) -> None:
        self.policy = load_policy("")
        # Folding only computes changes and never publishes, so it is given no outbox.
        self.clockwork = Clockwork(NotifyStore(db), self.policy, outbox=None, caller_texts=False)  # type: ignore[arg-type]  # no outbox
        self.cases: dict[str, NotifyCase] = {}
        self.versions: dict[str, int] = {}
        self.contacts: dict[str, Doc] = {}
        self.live_timers: set[str] = set()

    def apply(self, event: Any) -> None:
        if isinstance(event, HelpRequested):
            agreed = event.caller.consents_to_texts  # as `NotifyStore.remember_callers` keeps it
            self.contacts.setdefault(
                event.case_id,
                {"_id": event.case_id, "consents_to_texts": True, "phone": event.caller.phone}
                if agreed
                else {"_id": event.case_id, "consents_to_texts": False},
            )
            self.contacts[event.case_id]["stored_at"] = event.received_at
        change = self.clockwork.fold(
            event.case_id, [(str(event.event_id), lambda s: case_rules.apply(s, event, self.policy))], event.occurred_at
        )
        new = change(self.cases.get(event.case_id))
        if new is None:
            return
        for entry in new.outbox:
            ids = {t["id"] for t in entry.get("timers", [])}
            if entry["op"] == "schedule":
                self.live_timers |= ids
            elif entry["op"] == "cancel":
                self.live_timers -= ids
            elif entry["op"] == "forget_caller":
                self.contacts.pop(event.case_id, None)
        self.cases[event.case_id] = new.model_copy(update={"outbox": []})
        self.versions[event.case_id] = self.versions.get(event.case_id, 0) + 1

    def drain(self) -> tuple[list[Doc], list[Doc]]:
        """The case documents and contacts built so far (then forgotten)."""
        now = datetime.now(UTC)
        cases = [
            CODEC.dump(case) | {"version": self.versions[case_id], "updated_at": now, "outbox_pending": False}
            for case_id, case in self.cases.items()
        ]
        contacts = list(self.contacts.values())
        self.cases.clear()
        self.versions.clear()
        self.contacts.clear()
        return cases, contacts
