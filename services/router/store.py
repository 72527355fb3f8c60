"""The router's MongoDB access: case assignment state."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from common.store import insert_once


class RouterStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.cases = db["cases"]

    async def ensure_indexes(self) -> None:
        await self.cases.create_index([("lead.department", 1), ("lead.district", 1), ("status", 1)])

    async def create_case(self, document: dict[str, Any]) -> bool:
        """Record a dispatched case once (its `_id` is the case id); False on redelivery."""
        return await insert_once(self.cases, document)

    async def queue(self, department: str, district: str) -> list[dict[str, Any]]:
        cursor = self.cases.find({"lead.department": department, "lead.district": district}).sort(
            [("emergency", -1), ("received_at", 1)]
        )
        return await cursor.to_list(500)
