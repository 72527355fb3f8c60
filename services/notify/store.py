"""Notify's MongoDB access: SLA clocks (documents with an indexed `due_at`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase


class NotifyStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.clocks = db["clocks"]

    async def ensure_indexes(self) -> None:
        await self.clocks.create_index([("due_at", ASCENDING)])
        await self.clocks.create_index([("district", ASCENDING), ("due_at", ASCENDING)])

    async def start_clock(self, case_id: str, *, district: str, department: str, sla_class: str,
                          started_at: datetime, due_at: datetime, emergency: bool) -> None:
        """The citizen clock of a case; a redelivered dispatch changes nothing."""
        await self.clocks.update_one(
            {"_id": case_id},
            {"$setOnInsert": {"district": district, "department": department, "sla_class": sla_class,
                              "started_at": started_at, "due_at": due_at, "emergency": emergency,
                              "status": "open"}},
            upsert=True,
        )

    async def cases(self, district: str | None) -> list[dict[str, Any]]:
        query = {} if district is None else {"district": district}
        return await self.clocks.find(query).sort("due_at", ASCENDING).to_list(1000)
