"""The hotline's MongoDB access: case-number counters, intake records and the intake outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.hotline import HelpRequested
from services.hotline.domain import case_day, format_case_number


class HotlineStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.counters = db["counters"]
        self.intakes = db["intakes"]
        self.outbox = db["outbox"]

    async def ensure_indexes(self) -> None:
        await self.outbox.create_index([("published", ASCENDING), ("seq", ASCENDING)])
        await self.outbox.create_index("seq", unique=True)

    async def next_case_number(self, at: datetime) -> str:
        day = case_day(at)
        doc = await self.counters.find_one_and_update(
            {"_id": f"case:{day}"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return format_case_number(day, doc["seq"])

    async def _next_outbox_seq(self) -> int:
        doc = await self.counters.find_one_and_update(
            {"_id": "outbox"}, {"$inc": {"seq": 1}}, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc["seq"])

    async def record_intake(self, event: HelpRequested) -> int:
        """Store the intake and its outbox entry; once this returns, the call cannot be lost."""
        seq = await self._next_outbox_seq()
        body = event.model_dump(mode="json")
        await self.intakes.insert_one({"_id": event.case_id, "event": body, "created_at": datetime.now(UTC)})
        await self.outbox.insert_one(
            {"_id": str(event.event_id), "seq": seq, "topic": event.TOPIC, "case_id": event.case_id,
             "event": body, "published": False, "created_at": datetime.now(UTC)}
        )
        return seq

    async def mark_published(self, event_id: str) -> None:
        await self.outbox.update_one(
            {"_id": event_id}, {"$set": {"published": True, "published_at": datetime.now(UTC)}}
        )

    async def unpublished(self, limit: int = 100) -> list[dict[str, Any]]:
        cursor = self.outbox.find({"published": False}).sort("seq", ASCENDING).limit(limit)
        return await cursor.to_list()

    async def get_intake(self, case_id: str) -> dict[str, Any] | None:
        return await self.intakes.find_one({"_id": case_id})
