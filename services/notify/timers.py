"""Durable timers: documents with an indexed `due_at`, kept in one collection per time bucket.

A sweep must cost what is due, not what is pending. On MongoDB a single collection with a `due_at` index
and a range query with a limit gives that. FerretDB 1.24 on SQLite does not push a range filter, a sort
or even an `_id` lookup down to an index (its `explain` shows `filterPushdown: false` and a full SCAN), so
a sweep over one collection reads every pending timer. Here each timer lives in the collection of its
bucket (`<prefix>_<epoch>`, `bucket_s` wide); a small registry lists the buckets. A sweep reads the
registry, then runs the `due_at` range query with a limit only in the buckets whose time has come: on
either store its cost follows the number of timers due (plus those sharing the current bucket).

Timers are never written into a bucket that has already begun (a late timer goes into the current one),
so a past bucket only shrinks and is dropped once empty.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from common.store import create_query_indexes, delete_by_ids, insert_once

DUPLICATE_KEY = 11000


@dataclass(frozen=True)
class Timer:
    id: str
    due_at: datetime
    payload: dict[str, Any]


@dataclass(frozen=True)
class DueTimer:
    bucket: int
    id: str
    due_at: datetime
    payload: dict[str, Any]


class TimerWheel:
    """Schedule, cancel and find due timers; ids are natural, so scheduling twice is harmless."""

    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], prefix: str, *, bucket_s: int = 300, grace_s: float | None = None
    ) -> None:
        self.db = db
        self.prefix = prefix
        self.bucket_s = bucket_s
        self.grace = timedelta(seconds=grace_s if grace_s is not None else 2 * bucket_s)
        self.registry = db[f"{prefix}_buckets"]
        self._known: set[int] = set()

    def bucket_of(self, due_at: datetime, now: datetime) -> int:
        """The bucket of a timer: its own, or the current one when its time is already past."""
        start = int(max(due_at, now).timestamp()) // self.bucket_s * self.bucket_s
        return start

    def collection(self, bucket: int):
        return self.db[f"{self.prefix}_{bucket}"]

    async def _ensure_bucket(self, bucket: int) -> None:
        if bucket in self._known:
            return
        if await insert_once(self.registry, {"_id": bucket, "starts_at": datetime.fromtimestamp(bucket, UTC)}):
            await create_query_indexes(self.db, [(self.collection(bucket), [("due_at", ASCENDING)])])
        self._known.add(bucket)

    async def schedule(self, timers: Iterable[Timer], now: datetime | None = None) -> dict[str, int]:
        """Store the timers (an id already stored is left as it is); returns each id's bucket."""
        now = now or datetime.now(UTC)
        by_bucket: dict[int, list[Timer]] = defaultdict(list)
        for timer in timers:
            by_bucket[self.bucket_of(timer.due_at, now)].append(timer)
        await self.place(by_bucket)
        return {t.id: bucket for bucket, group in by_bucket.items() for t in group}

    async def place(self, by_bucket: dict[int, list[Timer]]) -> None:
        """Store timers in the buckets chosen when they were decided (an id already stored is left as it
        is). Placed moments after the decision, a bucket may have begun meanwhile: that is harmless, a sweep
        reads every begun bucket; one long past is registered again if it was dropped."""
        horizon = int((datetime.now(UTC) - self.grace).timestamp()) - self.bucket_s
        for bucket, group in by_bucket.items():
            if bucket <= horizon:
                self._known.discard(bucket)  # possibly reaped by another process: register it again
            await self._ensure_bucket(bucket)
            docs = [{"_id": t.id, "due_at": t.due_at, "payload": t.payload} for t in group]
            try:
                await self.collection(bucket).insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if any(err.get("code") != DUPLICATE_KEY for err in exc.details.get("writeErrors", [])):
                    raise

    async def insert_bulk(self, bucket: int, docs: list[dict[str, Any]]) -> None:
        """Load pre-built timer documents into one bucket (benchmarks and migrations)."""
        await self._ensure_bucket(bucket)
        await self.collection(bucket).insert_many(docs, ordered=False)

    async def cancel(self, refs: Iterable[tuple[str, int]]) -> None:
        by_bucket: dict[int, list[str]] = defaultdict(list)
        for timer_id, bucket in refs:
            by_bucket[bucket].append(timer_id)
        for bucket, ids in by_bucket.items():
            await delete_by_ids(self.collection(bucket), ids)

    async def due(self, now: datetime, limit: int) -> list[DueTimer]:
        """Up to `limit` timers whose `due_at` has passed, earliest first."""
        current = self.bucket_of(now, now)
        buckets = [d["_id"] for d in await self.registry.find({"_id": {"$lte": current}}).to_list(None)]
        out: list[DueTimer] = []
        for bucket in sorted(buckets):
            if len(out) >= limit:
                break
            cursor = self.collection(bucket).find({"due_at": {"$lte": now}}).sort("due_at", ASCENDING)
            for doc in await cursor.limit(limit - len(out)).to_list(None):
                out.append(DueTimer(bucket, doc["_id"], doc["due_at"], doc["payload"]))
        return sorted(out, key=lambda t: t.due_at)

    async def done(self, timer: DueTimer) -> None:
        await self.collection(timer.bucket).delete_one({"_id": timer.id})

    async def reap(self, now: datetime) -> int:
        """Drop past buckets that are empty; returns how many were dropped."""
        horizon = int((now - self.grace).timestamp()) - self.bucket_s
        dropped = 0
        for doc in await self.registry.find({"_id": {"$lte": horizon}}).to_list(None):
            bucket = doc["_id"]
            if await self.collection(bucket).find_one({}) is None:
                await self.collection(bucket).drop()
                await self.registry.delete_one({"_id": bucket})
                self._known.discard(bucket)
                dropped += 1
        return dropped

    async def pending(self) -> int:
        """How many timers are stored (all buckets); for tests and diagnostics."""
        total = 0
        for doc in await self.registry.find({}).to_list(None):
            total += await self.collection(doc["_id"]).count_documents({})
        return total
