"""The router's MongoDB access: one document per case (its tasks embedded), written with a version check.

FerretDB has no multi-document transactions, so every change to a case is one document replace guarded
by its `version` (optimistic concurrency); the events it causes ride in the same document (`outbox`)
until published.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase

from common.store import insert_once
from services.router.domain.case import Case, queue_key
from services.router.domain.dispatching import utcnow


class RouterStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.cases = db["cases"]

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("queue_keys", ASCENDING)])
        await self.cases.create_index([("district", ASCENDING), ("status", ASCENDING)])
        await self.cases.create_index([("outbox_pending", ASCENDING), ("updated_at", ASCENDING)])

    async def insert_case(self, case: Case, *, initial_events: list[dict[str, Any]]) -> bool:
        """Record a new case once (its `_id` is the case id); False on redelivery."""
        doc = case.to_document()
        doc["initial_events"] = initial_events
        doc["updated_at"] = utcnow()
        return await insert_once(self.cases, doc)

    async def get(self, case_id: str) -> Case | None:
        doc = await self.cases.find_one({"_id": case_id})
        return Case.from_document(doc) if doc else None

    async def initial_events(self, case_id: str) -> list[dict[str, Any]]:
        doc = await self.cases.find_one({"_id": case_id}, {"initial_events": 1})
        return list((doc or {}).get("initial_events") or [])

    async def replace(self, case: Case) -> bool:
        """Write `case` if nobody changed it since it was read (its version); bumps the version."""
        doc = case.to_document()
        doc.pop("_id")
        doc["version"] = case.version + 1
        doc["updated_at"] = utcnow()
        result = await self.cases.update_one({"_id": case.case_id, "version": case.version}, {"$set": doc})
        if result.matched_count:
            case.version += 1
            return True
        return False

    async def clear_outbox(self, case_id: str, version: int, published: int) -> bool:
        """Drop the first `published` outbox entries once they are on Kafka (only if unchanged since)."""
        doc = await self.cases.find_one({"_id": case_id, "version": version}, {"outbox": 1})
        if doc is None:
            return False
        rest = doc.get("outbox", [])[published:]
        result = await self.cases.update_one(
            {"_id": case_id, "version": version},
            {"$set": {"outbox": rest, "outbox_pending": bool(rest)}, "$inc": {"version": 1}},
        )
        return bool(result.matched_count)

    async def pending_outboxes(self, before: datetime, limit: int = 100) -> list[Case]:
        cursor = self.cases.find({"outbox_pending": True, "updated_at": {"$lt": before}}).limit(limit)
        return [Case.from_document(doc) async for doc in cursor]

    async def queue(self, department: str, district: str, statuses: list[str], limit: int = 200) -> list[Case]:
        """Cases with a task of this department and district in one of `statuses`: emergencies first, oldest first."""
        keys = [queue_key(department, district, s) for s in statuses]
        cursor = self.cases.find({"queue_keys": {"$in": keys}}).sort(
            [("emergency", DESCENDING), ("received_at", ASCENDING)]
        ).limit(limit)
        return [Case.from_document(doc) async for doc in cursor]

    async def district_cases(self, district: str | None, statuses: list[str], limit: int = 200) -> list[Case]:
        query: dict[str, Any] = {"status": {"$in": statuses}}
        if district is not None:
            query["district"] = district
        cursor = self.cases.find(query).sort([("emergency", DESCENDING), ("received_at", ASCENDING)]).limit(limit)
        return [Case.from_document(doc) async for doc in cursor]
