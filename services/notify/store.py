"""Notify's MongoDB access: case clocks, caller contacts, the notification outbox, fired SLA events.

One document per case holds its clocks (the state), the flat facts the views filter on, the timers it
placed, the ids of the events already applied and an outbox of effects; it is changed only through the
shared write path (`common.aggregates`, built over `cases` by the clockwork), so one event changes it
once, even with several notify instances.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from common.store import create_query_indexes, delete_by_ids, find_by, insert_once
from services.notify.timers import TimerWheel

APPLIED_KEPT = 500
DUPLICATE_KEY = 11000


class NotifyStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, bucket_s: int = 300) -> None:
        self.db = db
        self.cases = db["cases"]
        self.contacts = db["contacts"]
        self.notifications = db["notifications"]
        self.sla_events = db["sla_events"]
        self.sla_timers = TimerWheel(db, "sla_timers", bucket_s=bucket_s)
        self.outbox_timers = TimerWheel(db, "outbox_timers", bucket_s=bucket_s)

    async def ensure_indexes(self) -> None:
        await create_query_indexes(
            self.db,
            [
                (self.cases, [("district", ASCENDING), ("next_due_at", ASCENDING)]),
                (self.cases, [("status", ASCENDING), ("next_due_at", ASCENDING)]),
                (self.cases, [("lead_department", ASCENDING), ("status", ASCENDING)]),
                (self.notifications, [("case_id", ASCENDING)]),
                (self.sla_events, [("case_id", ASCENDING)]),
            ],
        )

    # ----------------------------------------------------------------------------- cases

    async def load(self, case_id: str) -> dict[str, Any] | None:
        return await self.cases.find_one({"_id": case_id})

    async def find_cases(
        self, query: dict[str, Any], *, sort: list[tuple[str, int]], limit: int
    ) -> list[dict[str, Any]]:
        projection = {"state.decisions": 0, "applied": 0, "scheduled": 0, "cancelled": 0, "outbox": 0}
        return await self.cases.find(query, projection).sort(sort).limit(limit).to_list(None)

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await (await self.cases.aggregate(pipeline)).to_list(None)

    # -------------------------------------------------------------------------- contacts

    async def remember_callers(self, phones: dict[str, str]) -> None:
        """The callers' phones by case, kept only to text them about their case; dropped when it closes.
        One insert for a batch; a case already known keeps its first phone."""
        if not phones:
            return
        now = datetime.now(UTC)
        try:
            await self.contacts.insert_many(
                [{"_id": case_id, "phone": phone, "stored_at": now} for case_id, phone in phones.items()], ordered=False
            )
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise

    async def remember_caller(self, case_id: str, phone: str) -> None:
        await self.remember_callers({case_id: phone})

    async def caller_phone(self, case_id: str) -> str | None:
        doc = await self.contacts.find_one({"_id": case_id})
        return doc["phone"] if doc else None

    async def caller_text_pending(self, case_id: str) -> bool:
        return bool(await self.cases_with_pending_caller_texts([case_id]))

    async def cases_with_pending_caller_texts(self, case_ids: list[str]) -> set[str]:
        found = await find_by(
            self.notifications, "case_id", case_ids, {"case_id": 1}, where={"recipient": "caller", "status": "pending"}
        )
        return {doc["case_id"] for doc in found}

    async def forget_caller(self, case_id: str) -> None:
        await self.forget_callers([case_id])

    async def forget_callers(self, case_ids: list[str]) -> None:
        if case_ids:
            await delete_by_ids(self.contacts, case_ids)

    # --------------------------------------------------------------------- notifications

    async def add_notification(self, document: dict[str, Any]) -> bool:
        """Insert a notification under its natural key (`_id`); False if it already exists."""
        return await insert_once(self.notifications, document)

    async def add_notifications(self, documents: list[dict[str, Any]]) -> set[str]:
        """Insert notifications under their natural keys in one insert; the keys that were new."""
        if not documents:
            return set()
        try:
            await self.notifications.insert_many(documents, ordered=False)
            return {d["_id"] for d in documents}
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            refused = {e["index"] for e in errors}
            return {d["_id"] for i, d in enumerate(documents) if i not in refused}

    async def notification(self, key: str) -> dict[str, Any] | None:
        return await self.notifications.find_one({"_id": key})

    async def record_attempt(self, key: str, attempt: dict[str, Any], status: str) -> None:
        update: dict[str, Any] = {"$push": {"attempts": attempt}, "$set": {"status": status}}
        if status == "sent":
            update["$set"]["sent_at"] = attempt["at"]
        await self.notifications.update_one({"_id": key}, update)

    async def list_notifications(self, query: dict[str, Any], limit: int = 200) -> list[dict[str, Any]]:
        return await self.notifications.find(query).sort("created_at", ASCENDING).limit(limit).to_list(None)

    # ------------------------------------------------------------------------ SLA events

    async def record_sla_event(self, document: dict[str, Any]) -> bool:
        return await insert_once(self.sla_events, document)

    async def sla_events_of(self, case_id: str) -> list[dict[str, Any]]:
        return await self.sla_events.find({"case_id": case_id}).sort("fired_at", ASCENDING).to_list(200)
