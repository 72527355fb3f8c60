"""The hotline's MongoDB access: case numbers, intake records, caller lookup keys, status, audit trail.

On FerretDB every find and update scans its collection (by `_id` too) and only inserts are cheap, so the
intake path inserts and reads in batches: the repeat-caller index is insert-only slots (callers.py), the
matching intake records come in one batched read (`common.store.find_by`), and a case's downstream
events live inside its intake document. The outbox collection is here too (`Outbox`); how its entries
are published is outbox.py's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from pydantic import BaseModel, Field, ValidationError
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from common.aggregates import Aggregates, Codec, find_with_archive, pack_entries, unpack_entries
from common.principal import Principal
from common.store import GroupInserts, busy_retry, create_query_indexes, delete_by_ids
from contracts.events import (
    CASE_EVENTS_TOPIC,
    CASE_LIFECYCLE_TOPIC,
    GRANT_EVENTS_TOPIC,
    SLA_EVENTS_TOPIC,
    Event,
    UnknownEventType,
    read_event,
)
from contracts.events.hotline import HelpRequested
from services.hotline.callers import CallerIndex, KeyView
from services.hotline.domain import OtherUpdate, StatusEvent, caller_keys, case_day, project_status
from services.hotline.domain.search import CaseFilter, search_entry, status_fields
from services.hotline.domain.status import CLOSED_STATUSES, CaseStatus
from services.hotline.search_index import SearchIndex

log = structlog.get_logger("hotline.store")
MAX_MATCHES = 20  # open cases of the same caller shown with a call (and read a page of this many at a time)


class IntakeRecord(BaseModel):
    """The part of an intake document that downstream events change (the aggregate of its write path):
    the events kept and the caller-facing status projected from them. The call itself is written once,
    when it is taken."""

    case_id: str
    received_at: datetime
    emergency: bool
    events: list[dict[str, Any]] = Field(default_factory=list)
    status: dict[str, Any] | None = None
    open: bool = True
    # Top-level copies for the search and the callbacks worklist: FerretDB pushes an equality filter on a
    # top-level field down to PostgreSQL, never one on a nested field (which decodes every document).
    status_code: str = "received"
    awaiting_callback: bool = False
    resolved_at: datetime | None = None
    outbox: list[dict[str, Any]] = Field(default_factory=list)  # the hotline publishes through its own


# Where an intake document keeps its events: one compressed value that only the write path reads back
# (`common.aggregates.pack_entries`); every status update rewrites them, and FerretDB decodes them each time.
EVENTS_PACKED = "events_packed"
WITHOUT_EVENTS = {"events": 0, EVENTS_PACKED: 0}  # what a read of records for lists leaves out


def kept_entries(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """The events an intake document keeps (`kept_entry` each), in the order they arrived: packed in one
    value (`EVENTS_PACKED`), or, in a document written before they were, as its `events` list."""
    return unpack_entries(doc[EVENTS_PACKED]) if doc.get(EVENTS_PACKED) else list(doc.get("events") or [])


RECORD_CODEC = Codec(
    load=lambda doc: IntakeRecord(
        case_id=doc["_id"],
        received_at=doc["received_at"],
        emergency=doc["emergency"],
        events=kept_entries(doc),
        status=doc.get("status"),
        open=doc.get("open", True),
        status_code=doc.get("status_code", "received"),
        awaiting_callback=doc.get("awaiting_callback", False),
        resolved_at=doc.get("resolved_at"),
    ),
    dump=lambda r: {
        "_id": r.case_id,
        "events": [],
        EVENTS_PACKED: pack_entries(r.events),
        "status": r.status,
        "open": r.open,
        "status_code": r.status_code,
        "awaiting_callback": r.awaiting_callback,
        "resolved_at": r.resolved_at,
        "outbox": r.outbox,
    },
)
# What a search or worklist row reads of an intake record (never its events or the whole call).
LIST_FIELDS = {
    "received_at": 1,
    "district": 1,
    "needs": 1,
    "emergency": 1,
    "status": 1,
    "resolved_at": 1,
    "event.caller.name": 1,
    "event.caller.phone": 1,
}
# What an intake record must show to leave the working set (with no callback awaited): nothing more is
# expected of the case; an event that comes after all brings it back.
FINISHED_STATUSES = frozenset({"resolved", *CLOSED_STATUSES})
CASES_PER_KEY = 50  # the most recent cases looked at per phone / ID-card / household
# The topics whose events an intake record keeps (the downstream ones and the hotline's own case events).
KEPT_TOPICS = (CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC, CASE_EVENTS_TOPIC)


def kept_entry(event: StatusEvent, kept_as: str) -> dict[str, Any]:
    """How an intake record keeps an event: its contract JSON under the id it is deduplicated by (a merge's
    copy for the surviving case is kept as `<event id>:<case id>`), with the time it arrived."""
    return {**event.model_dump(mode="json"), "event_id": kept_as, "_arrived_at": datetime.now(UTC)}


def kept_event(entry: dict[str, Any]) -> StatusEvent:
    """An event an intake record keeps, typed again (`kept_entry` read back). The record does not say which
    topic it came from: its type does. One kept before events were validated that does not fit its type any
    more, or has none, is an update of an unknown type."""
    body = {key: value for key, value in entry.items() if key != "_arrived_at"}
    body["event_id"] = str(entry.get("event_id", "")).split(":", 1)[0]
    value = json.dumps(body, default=str).encode()
    for topic in KEPT_TOPICS:
        try:
            return read_event(topic, value)
        except UnknownEventType:
            continue  # not one of this topic's types: perhaps the next topic's
        except ValidationError:
            break
    return OtherUpdate.model_validate({"type": "unknown", **body, "event_id": str(entry.get("event_id", ""))})


def _stored_time(at: datetime | None) -> datetime | None:
    """A time as the store keeps it (milliseconds), so a re-projection compares equal to what is stored."""
    return at.replace(microsecond=at.microsecond // 1000 * 1000) if at else None


class HotlineStore:
    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, pepper: str, archive_after: timedelta | None = None
    ) -> None:
        self.db = db
        self.pepper = pepper
        self.intakes = db["intakes"]
        # Cases resolved, closed or merged whose callback is done leave `intakes` (which every status update
        # scans on FerretDB) once unchanged for `archive_after` (None: at once, and every id is looked for
        # there); still found by case number, and an event for one brings it back.
        self.intakes_archive = db["intakes_archive"]
        self.callers = CallerIndex(db)
        # Downstream events change an intake's record through the shared write path (on FerretDB two
        # concurrent updates of one document, an event from each of two topics, could lose one).
        self.records: Aggregates[IntakeRecord] = Aggregates(
            self.intakes,
            db["intake_claims"],
            RECORD_CODEC,
            archive=self.intakes_archive,
            archive_after=archive_after,
            finished={"status_code": {"$in": sorted(FINISHED_STATUSES)}, "awaiting_callback": False},
            archived=self._archived,
        )
        self.search_index = SearchIndex(db, may_be_archived=self.records.may_be_archived)
        self.counters = db["counters"]
        self.audit = db["audit"]
        self.idempotency = db["idempotency_keys"]
        # Concurrent calls share their inserts (group commit): one command for all the calls arriving
        # while the previous one is in flight.
        self._intake_inserts = GroupInserts(self.intakes)
        self._key_inserts = GroupInserts(self.idempotency)

    async def ensure_indexes(self) -> None:
        await create_query_indexes(
            self.db,
            [
                (self.intakes, [("received_at", DESCENDING)]),
                (self.intakes, [("district", ASCENDING), ("received_at", DESCENDING)]),
                (self.intakes, [("phone_key", ASCENDING)]),
                (self.intakes, [("id_card_key", ASCENDING)]),
                (self.intakes, [("awaiting_callback", ASCENDING), ("resolved_at", ASCENDING)]),
                (self.audit, [("case_ids", ASCENDING)]),
            ],
        )
        await self.search_index.ensure_indexes()
        await self.callers.migrate_legacy()

    # ------------------------------------------------------------------------ case numbers

    async def case_number_floor(self, day: str) -> int:
        doc = await self.counters.find_one({"_id": f"case:{day}"})
        return int(doc["last"]) if doc else 0

    async def raise_case_number_floor(self, day: str, seq: int) -> None:
        await busy_retry(lambda: self.counters.update_one({"_id": f"case:{day}"}, {"$max": {"last": seq}}, upsert=True))

    # ------------------------------------------------------------------------ intake

    def keys_of(self, event: HelpRequested) -> dict[str, str]:
        return caller_keys(
            self.pepper,
            phone=event.caller.phone,
            id_card=event.caller.id_card,
            district=event.place.district,
            address=event.place.address,
        )

    @staticmethod
    def _search_fields(received_at: datetime, keys: dict[str, str]) -> dict[str, Any]:
        """The top-level fields a search filters on by equality (pushed down on FerretDB): the Chongqing
        day received and the caller's phone and ID-card keys (keyed hashes, never the numbers)."""
        return {"day": case_day(received_at), "phone_key": keys.get("phone"), "id_card_key": keys.get("id_card")}

    @staticmethod
    def first_status(event: HelpRequested) -> CaseStatus:
        return project_status(event.case_id, received_at=event.received_at, emergency=event.emergency, events=[])

    def intake_document(self, event: HelpRequested) -> dict[str, Any]:
        status = self.first_status(event)
        keys = self.keys_of(event)
        return {
            "_id": event.case_id,
            "event": event.model_dump(mode="json"),
            "keys": keys,
            "received_at": event.received_at,
            "emergency": event.emergency,
            "needs": list(event.needs),
            "district": event.place.district,
            **self._search_fields(event.received_at, keys),
            "channel": event.channel,
            "events": [],
            EVENTS_PACKED: None,
            **self._status_fields(status),
            "created_at": datetime.now(UTC),
        }

    async def reserve_idempotency_key(self, key: str, case_id: str) -> str | None:
        """Tie a client's `Idempotency-Key` to the case number about to be claimed; None if this request won
        it, else the case number an earlier request with that key holds (the unique `_id` decides)."""
        try:
            await self._key_inserts.insert({"_id": key, "case_id": case_id, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            held = await self.idempotency.find_one({"_id": key})
            return held["case_id"] if held else case_id
        return None

    async def release_idempotency_key(self, key: str, case_id: str, *, older_than: datetime | None = None) -> None:
        """The number tied to the key could not be claimed (or the process that tied it died before it
        was, `older_than`): untie it, so that the next request with the key is taken afresh."""
        query: dict[str, Any] = {"_id": key, "case_id": case_id}
        if older_than is not None:
            query["at"] = {"$lt": older_than}
        await busy_retry(lambda: self.idempotency.delete_one(query))

    async def claim_intake(self, event: HelpRequested, *, idempotency_key: str | None = None) -> None:
        """Insert the intake record; its unique `_id` claims the case number (DuplicateKeyError if taken).
        It keeps the request's `Idempotency-Key` ("" without one), so a repeat can tell its own case from
        another's (a record from before has none: taken as the repeat's own). Its search entry is filed
        next (`index_intake`), beside the call's other writes."""
        document = self.intake_document(event)
        document["idempotency_key"] = idempotency_key or ""
        await self._intake_inserts.insert(document)
        self.records.remember(document)  # its first downstream event need not read it back

    async def index_intake(self, event: HelpRequested, keys: dict[str, str] | None = None) -> None:
        """File a claimed call's search entry (`keys`: the call's caller keys, if known). A failure is only
        logged: the call is taken, and the backfill files what is missing."""
        try:
            await self.search_index.add(search_entry(event, keys or self.keys_of(event), self.first_status(event)))
        except PyMongoError as exc:
            log.warning("search entry not filed", case_id=event.case_id, error=repr(exc))

    @staticmethod
    def caller_key_ids(keys: dict[str, str]) -> list[str]:
        return [f"{kind}:{value}" for kind, value in keys.items()]

    async def read_callers(self, keys: dict[str, str]) -> dict[str, KeyView]:
        """What the caller index holds for the call's keys (two queries); pass it on to the calls below."""
        return await self.callers.read(self.caller_key_ids(keys))

    async def index_caller(self, case_id: str, keys: dict[str, str], *, seen: dict[str, KeyView] | None = None) -> None:
        """Remember the case under each of the caller's keys, for repeat-caller matches and lookups."""
        await self.callers.add(case_id, self.caller_key_ids(keys), seen)

    async def get_intake(self, case_id: str) -> dict[str, Any] | None:
        """The intake record, from the working set or else (a case old enough) from the archive."""
        found = await find_with_archive(self.intakes, self.intakes_archive, [case_id], self.records.may_be_archived)
        return found.get(case_id)

    async def _archived(self, case_ids: list[str]) -> None:
        """Intake records were archived: their search entries follow."""
        await self.search_index.archive(case_ids)

    async def _intakes(self, case_ids: list[str], *, remembered: bool = False) -> list[dict[str, Any]]:
        """The intake records (without their events) in the order asked, in one read (and one of the
        archive for those old enough not found); missing ones left out. With `remembered`, those this
        process wrote moments ago are taken from its memory (`Aggregates.remembered`) and not read."""
        by_id = {
            c: {k: v for k, v in doc.items() if k not in WITHOUT_EVENTS}
            for c, doc in (self.records.remembered(case_ids) if remembered else {}).items()
        }
        if unread := [c for c in case_ids if c not in by_id]:
            by_id |= await find_with_archive(
                self.intakes, self.intakes_archive, unread, self.records.may_be_archived, WITHOUT_EVENTS
            )
        return [by_id[c] for c in case_ids if c in by_id]

    async def _cases_for_keys(self, keys: dict[str, str], seen: dict[str, KeyView] | None) -> dict[str, list[str]]:
        """Case ids per case, with the kinds of key they matched, most recent first."""
        views = seen if seen is not None else await self.read_callers(keys)
        matched: dict[str, list[str]] = {}
        for kind, key_id in zip(keys, self.caller_key_ids(keys), strict=True):
            view = views.get(key_id)
            for case_id in view.case_ids(CASES_PER_KEY) if view else []:
                matched.setdefault(case_id, []).append(kind)
        return matched

    async def open_cases_matching(
        self, keys: dict[str, str], *, exclude: str | None = None, seen: dict[str, KeyView] | None = None
    ) -> list[dict[str, Any]]:
        """Open cases sharing a phone, ID-card or household key with the call (并单 candidates)."""
        matched = await self._cases_for_keys(keys, seen)
        matched.pop(exclude or "", None)
        # The newest first (a case number sorts by its day, then its number), read a page of MAX_MATCHES at a
        # time until that many are open: a phone that calls all day costs each of its calls one page (on
        # FerretDB one lookup per id, `common.store.find_by`), less the records this process wrote moments
        # ago, which it remembers (a phone calling again and again: its recent cases cost no lookup; with
        # several hotline processes, one whose status another process changed since may show it late).
        candidates = sorted(matched, reverse=True)[: MAX_MATCHES * 2]
        found = []
        for start in range(0, len(candidates), MAX_MATCHES):
            for doc in await self._intakes(candidates[start : start + MAX_MATCHES], remembered=True):
                if doc.get("status", {}).get("status") in CLOSED_STATUSES:
                    continue
                doc["matched_on"] = sorted(matched[doc["_id"]])
                found.append(doc)
            if len(found) >= MAX_MATCHES:
                break
        found.sort(key=lambda d: d["received_at"], reverse=True)
        return found[:MAX_MATCHES]

    async def cases_by_key(self, kind: str, value: str) -> list[dict[str, Any]]:
        [view] = (await self.read_callers({kind: value})).values()
        return await self._intakes(view.case_ids(CASES_PER_KEY))

    async def recent(
        self,
        *,
        limit: int = 50,
        open_only: bool = False,
        district: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        case_ids: list[str] | None = None,
        needs: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Lists for people (page, Open311); not on the intake path, so a scan is acceptable here."""
        if case_ids is not None:
            return await self._intakes(case_ids[:limit])
        query: dict[str, Any] = {}
        if open_only:
            query["open"] = True
        if district:
            query["district"] = district
        if since or until:
            query["received_at"] = {k: v for k, v in (("$gte", since), ("$lte", until)) if v}
        if needs:
            query["needs"] = {"$in": needs}
        docs = await self.intakes.find(query, WITHOUT_EVENTS).sort("received_at", DESCENDING).limit(limit).to_list()
        if not open_only and len(docs) < limit:  # closed cases long finished are in the archive
            older = self.intakes_archive.find(query, WITHOUT_EVENTS).sort("received_at", DESCENDING).limit(limit)
            docs = sorted([*docs, *await older.to_list()], key=lambda d: d["received_at"], reverse=True)[:limit]
        return docs

    # ------------------------------------------------------------------------ events and status

    async def record_event(self, event: Event) -> bool:
        """Keep one of the hotline's own case events in its case's record; False if it was there already
        (redelivery) or the case is not this hotline's."""
        return bool(await self.apply_events([(event.case_id, str(event.event_id), event)], project=False))

    async def apply_events(self, events: list[tuple[str, str, StatusEvent]], *, project: bool = True) -> set[str]:
        """Keep a batch of events, `(case_id, kept_as, event)` each (`kept_entry`), in their cases' records
        and re-project each case's status (unless `project` is False): one pass of the shared write path for
        the whole batch. Events of cases this hotline never took are ignored, one seen before (redelivery)
        is not kept twice. Returns the cases whose record changed."""
        arriving: dict[str, list[tuple[str, StatusEvent]]] = {}
        moved: dict[str, CaseStatus] = {}  # the cases whose caller-facing status changes
        for case_id, kept_as, event in events:
            arriving.setdefault(case_id, []).append((kept_as, event))

        def change_for(case_id: str) -> Callable[[IntakeRecord | None], IntakeRecord | None]:
            def change(record: IntakeRecord | None) -> IntakeRecord | None:
                if record is None:
                    return None  # not a call this hotline took
                seen = {e.get("event_id") for e in record.events}
                new = []
                for kept_as, event in arriving[case_id]:
                    if kept_as not in seen:
                        seen.add(kept_as)
                        new.append(kept_entry(event, kept_as))
                kept = record.events + new
                fields = {}
                if project:
                    status = self._project(record, kept)
                    fields = self._status_fields(status)
                    self._note_move(moved, record, status)
                if not new and (not project or record.status == fields["status"]):
                    return None
                return record.model_copy(update={"events": kept, **fields})

            return change

        outcome = await self.records.change_many({c: change_for(c) for c in arriving})
        self._reindex(moved, outcome.written)
        return set(outcome.written)

    @staticmethod
    def _note_move(moved: dict[str, CaseStatus], record: IntakeRecord, status: CaseStatus) -> None:
        before = record.status or {}
        if (before.get("status"), before.get("label_zh"), before.get("label_en")) != tuple(
            status_fields(status).values()
        ):
            moved[record.case_id] = status
        else:
            moved.pop(record.case_id, None)

    def _reindex(self, moved: dict[str, CaseStatus], written: Collection[str]) -> None:
        """The search index follows the statuses written, off the batch's path (`set_statuses_soon`)."""
        self.search_index.set_statuses_soon({c: s for c, s in moved.items() if c in written})

    @staticmethod
    def _project(record: IntakeRecord, kept: list[dict[str, Any]]) -> CaseStatus:
        """The status from the record's events, in the order they arrived (the projection sorts them by
        when they happened)."""
        return project_status(
            record.case_id,
            received_at=record.received_at,
            emergency=record.emergency,
            events=[kept_event(entry) for entry in kept],
        )

    async def refresh_status(self, case_id: str) -> CaseStatus | None:
        """Re-project the caller-facing status from every event kept, on the document as it is now."""
        projected: list[CaseStatus] = []
        moved: dict[str, CaseStatus] = {}

        def change(record: IntakeRecord | None) -> IntakeRecord | None:
            if record is None:
                return None
            status = self._project(record, record.events)
            projected[:] = [status]
            self._note_move(moved, record, status)
            fields = self._status_fields(status)
            unchanged = all(getattr(record, name) == value for name, value in fields.items())
            return None if unchanged else record.model_copy(update=fields)

        written = await self.records.change(case_id, change)
        self._reindex(moved, [written.id] if written else [])
        return projected[0] if projected else None

    @staticmethod
    def _status_fields(status: CaseStatus) -> dict[str, Any]:
        return {
            "status": status.model_dump(mode="json"),
            "open": status.open,
            "status_code": status.status,
            "awaiting_callback": status.awaiting_callback,
            "resolved_at": _stored_time(status.resolved_at) if status.awaiting_callback else None,
        }

    # ------------------------------------------------------------------------ search and worklists

    async def search(self, f: CaseFilter, *, skip: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of the cases matching, newest first, and whether more follow, as the search index's
        entries (masked: what a result row shows); never a scan of the intake records."""
        return await self.search_index.search(f, skip=skip, limit=limit)

    async def awaiting_callbacks(
        self, *, resolved_by: datetime | None, district: str | None, skip: int, limit: int
    ) -> tuple[list[dict[str, Any]], bool]:
        """Resolved cases whose callback is not recorded, resolved by `resolved_by` (None: all), oldest
        resolution first: one query per page."""
        query: dict[str, Any] = {"awaiting_callback": True}
        if resolved_by is not None:
            query["resolved_at"] = {"$lte": resolved_by}
        if district:
            query["district"] = district
        cursor = (
            self.intakes.find(query, LIST_FIELDS)
            .sort([("resolved_at", ASCENDING), ("_id", ASCENDING)])
            .skip(skip)
            .limit(limit + 1)
        )
        docs = await cursor.to_list()
        return docs[:limit], len(docs) > limit

    # ------------------------------------------------------------------------ audit

    async def audit_read(
        self,
        principal: Principal,
        *,
        action: str,
        reason: str,
        case_ids: list[str],
        query: dict[str, str] | None = None,
    ) -> None:
        """Who read which case's personal data, when and why (ARCHITECTURE.md Security)."""
        await busy_retry(
            lambda: self.audit.insert_one(
                {
                    "at": datetime.now(UTC),
                    "actor": principal.sub,
                    "role": str(principal.role),
                    "district": principal.district,
                    "action": action,
                    "reason": reason,
                    "case_ids": case_ids,
                    "query": query or {},
                }
            )
        )

    async def audit_trail(self, case_id: str, limit: int = 200) -> list[dict[str, Any]]:
        cursor = self.audit.find({"case_ids": case_id}, {"_id": 0}).sort("at", DESCENDING).limit(limit)
        return await cursor.to_list()


# ---------------------------------------------------------------------------- outbox

QUEUED, INFLIGHT = "queued", "inflight"


class Outbox:
    """The outbox collection: entries `{_id: event_id, seq, state, event, ...}` not yet acknowledged."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.entries = db["outbox"]
        self._inserts = GroupInserts(self.entries)  # concurrent calls' entries in one insert
        self._next: int | None = None

    async def ensure_indexes(self) -> None:
        await self.entries.create_index("seq", unique=True)

    async def _take_seq(self) -> int:
        """The next sequence number, counted in memory from the highest stored one; the unique index on
        `seq` settles a race with another process."""
        if self._next is None:
            last = await self.entries.find_one({}, {"seq": 1}, sort=[("seq", DESCENDING)])
            self._next = max(self._next or 1, (last["seq"] + 1) if last else 1)
        seq = self._next
        self._next = seq + 1
        return seq

    async def append(self, event: Event, *, direct: bool) -> dict[str, Any]:
        """Store the event; `direct` claims it for an immediate publish by the caller."""
        now = datetime.now(UTC)
        body = event.model_dump(mode="json")
        entry = {
            "_id": str(event.event_id),
            "topic": event.TOPIC,
            "case_id": event.case_id,
            "type": body["type"],
            "event": body,
            "state": INFLIGHT if direct else QUEUED,
            "claimed_at": now,
            "created_at": now,
        }
        while True:
            entry["seq"] = await self._take_seq()
            try:
                await self._inserts.insert(entry)
            except DuplicateKeyError:
                if await self.holds(entry["_id"]):
                    return entry  # the same event appended twice: once is enough
                self._next = None  # another process took that seq: recount from the highest
                continue
            return entry

    async def holds(self, entry_id: str) -> bool:
        """Whether the entry still waits for Kafka's acknowledgement."""
        return await self.entries.find_one({"_id": entry_id}, {"_id": 1}) is not None

    async def remove(self, *entry_ids: str) -> None:
        """Kafka acknowledged these: they leave the outbox (the intake record keeps the call)."""
        await delete_by_ids(self.entries, entry_ids)

    async def release(self, entry_id: str) -> None:
        """A direct publish failed: hand the entry to the relay."""
        await busy_retry(lambda: self.entries.update_one({"_id": entry_id}, {"$set": {"state": QUEUED}}))

    async def waiting(self, limit: int, takeover_s: float) -> list[dict[str, Any]]:
        """Entries for the relay, oldest first: queued ones and abandoned in-flight ones."""
        cutoff = datetime.now(UTC) - timedelta(seconds=takeover_s)
        cursor = (
            self.entries.find({"$or": [{"state": QUEUED}, {"claimed_at": {"$lt": cutoff}}]})
            .sort("seq", ASCENDING)
            .limit(limit)
        )
        return await cursor.to_list()

    async def pending_count(self) -> int:
        return await self.entries.count_documents({})
