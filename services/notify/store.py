"""Notify's MongoDB access: case clocks, caller contacts, the notification outbox, fired SLA events.

One document per case holds its clocks (the state), the flat facts the views filter on, the timers it
scheduled and the ids of the events already applied; it is written with a version check (no
transactions on FerretDB) whose next version is claimed through a unique index first
(`common.store.VersionClaims`), so one event changes it once, even with several notify instances.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.store import VersionClaims, create_query_indexes, insert_once
from services.notify.timers import TimerWheel

APPLIED_KEPT = 500


class NotifyStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, bucket_s: int = 300) -> None:
        self.db = db
        self.cases = db["cases"]
        # FerretDB's conditional replace alone lets concurrent writers both win: claim the version first.
        self.versions = VersionClaims(db["case_claims"], self.cases)
        self.contacts = db["contacts"]
        self.notifications = db["notifications"]
        self.sla_events = db["sla_events"]
        self.sla_timers = TimerWheel(db, "sla_timers", bucket_s=bucket_s)
        self.outbox_timers = TimerWheel(db, "outbox_timers", bucket_s=bucket_s)

    async def ensure_indexes(self) -> None:
        await create_query_indexes(self.db, [
            (self.cases, [("district", ASCENDING), ("next_due_at", ASCENDING)]),
            (self.cases, [("status", ASCENDING), ("next_due_at", ASCENDING)]),
            (self.cases, [("lead_department", ASCENDING), ("status", ASCENDING)]),
            (self.notifications, [("case_id", ASCENDING)]),
            (self.sla_events, [("case_id", ASCENDING)]),
        ])

    # ----------------------------------------------------------------------------- cases

    async def load(self, case_id: str) -> dict[str, Any] | None:
        return await self.cases.find_one({"_id": case_id})

    async def save(self, case_id: str, previous: dict[str, Any] | None, document: dict[str, Any]) -> bool:
        """Write the case if nobody changed it since `previous` was read; False on a conflict."""
        now = datetime.now(UTC)
        if previous is None:
            try:
                await self.cases.insert_one({"_id": case_id, **document, "version": 1, "updated_at": now})
            except DuplicateKeyError:
                return False
            return True
        version = previous.get("version", 0)
        if not await self.versions.claim(case_id, version + 1):
            return False
        result = await self.cases.replace_one({"_id": case_id, "version": version},
                                              {**document, "version": version + 1, "updated_at": now})
        return result.matched_count == 1

    async def find_cases(self, query: dict[str, Any], *, sort: list[tuple[str, int]],
                         limit: int) -> list[dict[str, Any]]:
        projection = {"state.decisions": 0, "applied": 0, "scheduled": 0, "cancelled": 0}
        return await self.cases.find(query, projection).sort(sort).limit(limit).to_list(None)

    async def aggregate(self, pipeline: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return await (await self.cases.aggregate(pipeline)).to_list(None)

    # -------------------------------------------------------------------------- contacts

    async def remember_caller(self, case_id: str, phone: str) -> None:
        """The caller's phone, kept only to text them about this case; dropped when the case closes."""
        await self.contacts.update_one({"_id": case_id}, {"$setOnInsert": {"phone": phone,
                                                                           "stored_at": datetime.now(UTC)}},
                                       upsert=True)

    async def caller_phone(self, case_id: str) -> str | None:
        doc = await self.contacts.find_one({"_id": case_id})
        return doc["phone"] if doc else None

    async def caller_text_pending(self, case_id: str) -> bool:
        found = await self.notifications.find_one({"case_id": case_id, "recipient": "caller", "status": "pending"})
        return found is not None

    async def forget_caller(self, case_id: str) -> None:
        await self.contacts.delete_one({"_id": case_id})

    # --------------------------------------------------------------------- notifications

    async def add_notification(self, document: dict[str, Any]) -> bool:
        """Insert a notification under its natural key (`_id`); False if it already exists."""
        return await insert_once(self.notifications, document)

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
