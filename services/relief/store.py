"""Relief's MongoDB access: entitlements and the append-only payment ledger."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase


class ReliefStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]]) -> None:
        self.db = db
        self.ledger = db["ledger"]

    async def ensure_indexes(self) -> None:
        # One payment per idempotency key, ever (P6.1): (case, rule, period) or (run, recipient).
        await self.ledger.create_index("idempotency_key", unique=True)
