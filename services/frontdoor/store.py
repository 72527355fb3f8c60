"""The front door's own database: accounts, sign-in sessions, sign-in attempts and the audit trail.

Written for FerretDB, where every find and update scans its collection: accounts and live sessions
stay small (sessions are deleted once expired), attempts are inserts pruned after a day, the audit
trail is insert-only. Nothing here is a counter updated in place, since concurrent updates of one
document can lose writes there (README "Concurrency on FerretDB")."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from common.store import create_query_indexes
from services.frontdoor.domain.lockout import Attempt

Doc = dict[str, Any]


def digest(secret: str) -> str:
    """Refresh secrets are stored as their hash: a copy of the database signs no one in."""
    return hashlib.sha256(secret.encode()).hexdigest()


class FrontdoorStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.accounts = db["accounts"]
        self.sessions = db["sessions"]
        self.attempts = db["sign_in_attempts"]
        self.audit_trail = db["audit"]
        self._db = db

    async def ensure_indexes(self) -> None:
        await create_query_indexes(
            self._db,
            [
                (self.sessions, [("account", ASCENDING)]),
                (self.attempts, [("account", ASCENDING), ("at", ASCENDING)]),
                (self.audit_trail, [("account", ASCENDING), ("_id", DESCENDING)]),
            ],
        )

    # ---- accounts (`_id` is the user name)
    async def account(self, username: str) -> Doc | None:
        return await self.accounts.find_one({"_id": username})

    async def list_accounts(self) -> list[Doc]:
        return await self.accounts.find({}, {"password_hash": 0}).sort("_id", ASCENDING).to_list(None)

    async def any_account(self) -> bool:
        return await self.accounts.find_one({}, {"_id": 1}) is not None

    async def create_account(self, doc: Doc) -> bool:
        """False when the user name is taken (the unique `_id` decides, even between two admins)."""
        try:
            await self.accounts.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def update_account(self, username: str, fields: Doc) -> Doc | None:
        await self.accounts.update_one({"_id": username}, {"$set": fields})
        return await self.account(username)

    # ---- sessions (`_id` is the session id; the refresh secret only as its hash)
    async def open_session(
        self, *, sid: str, secret: str, account: str, at: datetime, expires_at: datetime, channel: str
    ) -> None:
        await self.sessions.insert_one(
            {
                "_id": sid,
                "secret_hash": digest(secret),
                "account": account,
                "created_at": at,
                "expires_at": expires_at,
                "revoked_at": None,
                "channel": channel,
            }
        )

    async def session(self, sid: str) -> Doc | None:
        return await self.sessions.find_one({"_id": sid})

    async def revoke_session(self, sid: str, *, at: datetime) -> None:
        await self.sessions.update_one({"_id": sid, "revoked_at": None}, {"$set": {"revoked_at": at}})

    async def revoke_sessions_of(self, account: str, *, at: datetime) -> int:
        result = await self.sessions.update_many({"account": account, "revoked_at": None}, {"$set": {"revoked_at": at}})
        return result.modified_count

    async def prune_sessions(self, *, now: datetime) -> int:
        return (await self.sessions.delete_many({"expires_at": {"$lt": now}})).deleted_count

    # ---- sign-in attempts (inserts only: a burst of failures is never undercounted)
    async def record_attempt(self, account: str, *, at: datetime, ok: bool) -> None:
        await self.attempts.insert_one({"_id": uuid.uuid4().hex, "account": account, "at": at, "ok": ok})

    async def attempts_since(self, account: str, since: datetime) -> list[Attempt]:
        docs = await self.attempts.find({"account": account, "at": {"$gte": since}}).to_list(None)
        return [Attempt(at=d["at"], ok=d["ok"]) for d in docs]

    async def prune_attempts(self, *, older_than: datetime) -> int:
        return (await self.attempts.delete_many({"at": {"$lt": older_than}})).deleted_count

    # ---- audit trail (append-only)
    async def audit(
        self,
        action: str,
        *,
        at: datetime,
        account: str | None,
        actor: str | None,
        client: str | None = None,
        details: Doc | None = None,
    ) -> None:
        # A time-ordered id: entries of one millisecond (a failure and the lock it earned) keep their order.
        entry_id = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        await self.audit_trail.insert_one(
            {
                "_id": entry_id,
                "at": at,
                "action": str(action),
                "account": account,
                "actor": actor,
                "client": client,
                "details": details or {},
            }
        )

    async def audit_entries(
        self, *, account: str | None = None, limit: int = 100, since: datetime | None = None
    ) -> list[Doc]:
        query: Doc = {}
        if account:
            query["account"] = account
        if since:
            query["at"] = {"$gte": since}
        return await self.audit_trail.find(query).sort("_id", DESCENDING).limit(limit).to_list(None)
