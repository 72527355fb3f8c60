"""The hotline's MongoDB access: case numbers, intake records, caller lookup keys, status, audit trail.

On FerretDB every find and update scans its collection (by `_id` too) and only inserts are cheap, so the
intake path inserts and reads in batches: the repeat-caller index is insert-only slots (callers.py), the
matching intake records come in one batched read (`common.store.find_by`), and a case's downstream
events live inside its intake document. The intake outbox is in outbox.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.aggregates import Aggregates, Codec
from common.principal import Principal
from common.store import GroupInserts, busy_retry, create_query_indexes, find_by
from contracts.events.hotline import HelpRequested
from services.hotline.callers import CallerIndex, KeyView
from services.hotline.domain import caller_keys, project_status
from services.hotline.domain.status import CLOSED_STATUSES, CaseStatus

MAX_MATCHES = 20


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
    outbox: list[dict[str, Any]] = Field(default_factory=list)  # the hotline publishes through its own


RECORD_CODEC = Codec(
    load=lambda doc: IntakeRecord(
        case_id=doc["_id"],
        received_at=doc["received_at"],
        emergency=doc["emergency"],
        events=list(doc.get("events", [])),
        status=doc.get("status"),
        open=doc.get("open", True),
    ),
    dump=lambda r: {"_id": r.case_id, "events": r.events, "status": r.status, "open": r.open, "outbox": r.outbox},
)
CASES_PER_KEY = 50  # the most recent cases looked at per phone / ID-card / household


class HotlineStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, pepper: str) -> None:
        self.db = db
        self.pepper = pepper
        self.intakes = db["intakes"]
        self.callers = CallerIndex(db)
        # Downstream events change an intake's record through the shared write path (on FerretDB two
        # concurrent updates of one document, an event from each of two topics, could lose one).
        self.records: Aggregates[IntakeRecord] = Aggregates(self.intakes, db["intake_claims"], RECORD_CODEC)
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
                (self.audit, [("case_ids", ASCENDING)]),
            ],
        )
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

    def intake_document(self, event: HelpRequested) -> dict[str, Any]:
        status = project_status(event.case_id, received_at=event.received_at, emergency=event.emergency, events=[])
        return {
            "_id": event.case_id,
            "event": event.model_dump(mode="json"),
            "keys": self.keys_of(event),
            "received_at": event.received_at,
            "emergency": event.emergency,
            "needs": list(event.needs),
            "district": event.place.district,
            "channel": event.channel,
            "events": [],
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

    async def claim_intake(self, event: HelpRequested) -> None:
        """Insert the intake record; its unique `_id` claims the case number (DuplicateKeyError if taken)."""
        document = self.intake_document(event)
        await self._intake_inserts.insert(document)
        self.records.remember(document)  # its first downstream event need not read it back

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
        return await self.intakes.find_one({"_id": case_id})

    async def _intakes(self, case_ids: list[str]) -> list[dict[str, Any]]:
        """The intake records (without their events) in the order asked, in one read; missing ones left out."""
        if not case_ids:
            return []
        docs = await find_by(self.intakes, "_id", case_ids, {"events": 0})
        by_id = {d["_id"]: d for d in docs}
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
        found = []
        for doc in await self._intakes(list(matched)[: MAX_MATCHES * 2]):
            if doc.get("status", {}).get("status") in CLOSED_STATUSES:
                continue
            doc["matched_on"] = sorted(matched[doc["_id"]])
            found.append(doc)
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
        cursor = self.intakes.find(query, {"events": 0}).sort("received_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    # ------------------------------------------------------------------------ events and status

    async def record_event(self, case_id: str, body: dict[str, Any], *, event_id: str) -> bool:
        """Keep one event in the case's record; False if it was there already (redelivery) or the case is
        not this hotline's."""
        return bool(await self.apply_events([(case_id, event_id, body)], project=False))

    async def apply_events(self, events: list[tuple[str, str, dict[str, Any]]], *, project: bool = True) -> set[str]:
        """Keep a batch of downstream events, `(case_id, event_id, body)` each, in their cases' records and
        re-project each case's status (unless `project` is False): one pass of the shared write path for the
        whole batch. Events of cases this hotline never took are ignored, one seen before (redelivery) is
        not kept twice. Returns the cases whose record changed."""
        arriving: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for case_id, event_id, body in events:
            arriving.setdefault(case_id, []).append((event_id, body))

        def change_for(case_id: str) -> Callable[[IntakeRecord | None], IntakeRecord | None]:
            def change(record: IntakeRecord | None) -> IntakeRecord | None:
                if record is None:
                    return None  # not a call this hotline took
                seen = {e.get("event_id") for e in record.events}
                new = []
                for event_id, body in arriving[case_id]:
                    if event_id not in seen:
                        seen.add(event_id)
                        new.append({**body, "event_id": event_id, "_arrived_at": datetime.now(UTC)})
                kept = record.events + new
                fields = self._status_fields(self._project(record, kept)) if project else {}
                if not new and (not project or record.status == fields["status"]):
                    return None
                return record.model_copy(update={"events": kept, **fields})

            return change

        outcome = await self.records.change_many({c: change_for(c) for c in arriving})
        return set(outcome.written)

    @staticmethod
    def _project(record: IntakeRecord, events: list[dict[str, Any]]) -> CaseStatus:
        return project_status(
            record.case_id,
            received_at=record.received_at,
            emergency=record.emergency,
            events=[{**e, "_arrival": i} for i, e in enumerate(events)],
        )

    async def refresh_status(self, case_id: str) -> CaseStatus | None:
        """Re-project the caller-facing status from every event kept, on the document as it is now."""
        projected: list[CaseStatus] = []

        def change(record: IntakeRecord | None) -> IntakeRecord | None:
            if record is None:
                return None
            status = self._project(record, record.events)
            projected[:] = [status]
            fields = self._status_fields(status)
            return None if record.status == fields["status"] else record.model_copy(update=fields)

        await self.records.change(case_id, change)
        return projected[0] if projected else None

    @staticmethod
    def _status_fields(status: CaseStatus) -> dict[str, Any]:
        return {"status": status.model_dump(mode="json"), "open": status.open}

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
