"""The hotline's MongoDB access: case numbers, intake records, case events, status, audit trail.

The intake outbox lives in `services/hotline/outbox.py`. Stays within what FerretDB 1.24 supports:
unique indexes, upserts and `find_one_and_update`; no transactions.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.auth import Principal
from contracts.events.hotline import HelpRequested
from services.hotline.domain import case_day, format_case_number, project_status
from services.hotline.domain.status import CLOSED_STATUSES, CaseStatus

MAX_MATCHES = 20


class HotlineStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.counters = db["counters"]
        self.intakes = db["intakes"]
        self.events = db["case_events"]
        self.audit = db["audit"]

    async def ensure_indexes(self) -> None:
        for key in ("keys.phone", "keys.id_card", "keys.household"):
            await self.intakes.create_index(key)
        await self.intakes.create_index([("received_at", DESCENDING)])
        await self.events.create_index([("case_id", ASCENDING)])
        await self.audit.create_index([("case_ids", ASCENDING)])

    # ------------------------------------------------------------------------ intake

    async def next_case_number(self, at: datetime) -> str:
        day = case_day(at)
        doc = await self.counters.find_one_and_update(
            {"_id": f"case:{day}"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return format_case_number(day, doc["seq"])

    def intake_document(self, event: HelpRequested, keys: dict[str, str]) -> dict[str, Any]:
        status = project_status(event.case_id, received_at=event.received_at, emergency=event.emergency, events=[])
        return {
            "_id": event.case_id,
            "event": event.model_dump(mode="json"),
            "keys": keys,
            "received_at": event.received_at,
            "emergency": event.emergency,
            "needs": list(event.needs),
            "district": event.place.district,
            "channel": event.channel,
            **self._status_fields(status),
            "created_at": datetime.now(UTC),
        }

    async def save_intake(self, document: dict[str, Any]) -> None:
        """Insert the intake record; idempotent (the relay repairs a record an interrupted intake missed)."""
        await self.intakes.update_one({"_id": document["_id"]}, {"$setOnInsert": document}, upsert=True)

    async def get_intake(self, case_id: str) -> dict[str, Any] | None:
        return await self.intakes.find_one({"_id": case_id})

    async def open_cases_matching(self, keys: dict[str, str], *, exclude: str | None = None) -> list[dict[str, Any]]:
        """Open cases sharing a phone, ID-card or household key with the call (并单 candidates)."""
        clauses = [{f"keys.{kind}": value} for kind, value in keys.items()]
        if not clauses:
            return []
        cursor = self.intakes.find({"$or": clauses}).sort("received_at", DESCENDING).limit(MAX_MATCHES * 3)
        found = []
        for doc in await cursor.to_list():
            if doc["_id"] == exclude or doc.get("status", {}).get("status") in CLOSED_STATUSES:
                continue
            doc["matched_on"] = sorted(k for k, v in keys.items() if doc.get("keys", {}).get(k) == v)
            found.append(doc)
        return found[:MAX_MATCHES]

    async def cases_by_key(self, kind: str, value: str, limit: int = 50) -> list[dict[str, Any]]:
        cursor = self.intakes.find({f"keys.{kind}": value}).sort("received_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    async def recent(self, *, limit: int = 50, open_only: bool = False, district: str | None = None,
                     since: datetime | None = None, until: datetime | None = None,
                     case_ids: list[str] | None = None, needs: list[str] | None = None) -> list[dict[str, Any]]:
        query: dict[str, Any] = {}
        if open_only:
            query["open"] = True
        if district:
            query["district"] = district
        if since or until:
            query["received_at"] = {k: v for k, v in (("$gte", since), ("$lte", until)) if v}
        if case_ids is not None:
            query["_id"] = {"$in": case_ids}
        if needs:
            query["needs"] = {"$in": needs}
        cursor = self.intakes.find(query).sort("received_at", DESCENDING).limit(limit)
        return await cursor.to_list()

    # ------------------------------------------------------------------------ events and status

    async def record_event(self, case_id: str, body: dict[str, Any], *, event_id: str) -> bool:
        """Keep one event for the case's projection; False if it was already recorded (redelivery)."""
        try:
            await self.events.insert_one(
                {"_id": event_id, "case_id": case_id, "body": body, "arrived_at": datetime.now(UTC)}
            )
        except DuplicateKeyError:
            return False
        return True

    async def events_of(self, case_id: str) -> list[dict[str, Any]]:
        docs = await self.events.find({"case_id": case_id}).sort("arrived_at", ASCENDING).to_list()
        return [{**d["body"], "_arrival": i} for i, d in enumerate(docs)]

    async def refresh_status(self, case_id: str) -> CaseStatus | None:
        """Re-project the caller-facing status from every event seen; a stale write never overwrites a newer one."""
        intake = await self.get_intake(case_id)
        if intake is None:
            return None
        status = project_status(case_id, received_at=intake["received_at"], emergency=intake["emergency"],
                                events=await self.events_of(case_id))
        await self.intakes.update_one(
            {"_id": case_id, "status.events_seen": {"$lte": status.events_seen}},
            {"$set": self._status_fields(status)},
        )
        return status

    @staticmethod
    def _status_fields(status: CaseStatus) -> dict[str, Any]:
        return {"status": status.model_dump(mode="json"), "open": status.open}

    # ------------------------------------------------------------------------ audit

    async def audit_read(self, principal: Principal, *, action: str, reason: str, case_ids: list[str],
                         query: dict[str, str] | None = None) -> None:
        """Who read which case's personal data, when and why (ARCHITECTURE.md Security)."""
        await self.audit.insert_one({
            "at": datetime.now(UTC), "actor": principal.sub, "role": str(principal.role),
            "district": principal.district, "action": action, "reason": reason, "case_ids": case_ids,
            "query": query or {},
        })

    async def audit_trail(self, case_id: str, limit: int = 200) -> list[dict[str, Any]]:
        cursor = self.audit.find({"case_ids": case_id}, {"_id": 0}).sort("at", DESCENDING).limit(limit)
        return await cursor.to_list()
