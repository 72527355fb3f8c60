"""Relief's MongoDB access: reads of cases and entitlements, the append-only payment ledger, the
registry, added standards and subsidy runs.

Cases and entitlements are written only through the shared write path, `common.aggregates.Aggregates`
(`services.relief.documents`): FerretDB 1.24 has no transactions and concurrent updates of one document
can lose each other, so each write claims the document's next version through a unique index, and an
entitlement's outgoing events ride in the same document (`outbox`), so a state change and its event are
written together. Amounts are strings (Decimal to the fen) plus integer fen for sums (FerretDB has no
Decimal128).
"""

from __future__ import annotations

from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from common.store import create_query_indexes, find_by, insert_once

DUPLICATE_KEY = 11000
Doc = dict[str, Any]


class ReliefStore:
    def __init__(self, db: AsyncDatabase[Doc]) -> None:
        self.db = db
        self.cases = db["cases"]
        self.entitlements = db["entitlements"]
        self.ledger = db["ledger"]
        self.registry = db["registry"]
        self.standards = db["standards"]
        self.runs = db["runs"]
        self.run_executions = db["run_executions"]

    async def ensure_indexes(self) -> None:
        # One payment per idempotency key, ever (P6.1): (case, rule, period) or (run, recipient).
        await self.ledger.create_index("idempotency_key", unique=True)
        await create_query_indexes(
            self.db,
            [
                (self.ledger, [("case_id", ASCENDING), ("recorded_at", ASCENDING)]),
                (self.ledger, [("recipient_id", ASCENDING), ("recorded_at", ASCENDING)]),
                (self.ledger, [("run_id", ASCENDING)]),
                (self.run_executions, [("run_id", ASCENDING)]),
                (self.entitlements, [("district", ASCENDING), ("status", ASCENDING)]),
                (self.entitlements, [("case_id", ASCENDING)]),
                (self.registry, [("id_card_hash", ASCENDING)]),
                (self.registry, [("district", ASCENDING), ("_id", ASCENDING)]),
            ],
        )
        await self.standards.create_index([("district", ASCENDING), ("effective_from", ASCENDING)], unique=True)

    # ---------------------------------------------------------------- cases and entitlements (reads)
    # Both are written only through `common.aggregates` (`services.relief.documents`).

    async def get_case(self, case_id: str) -> Doc | None:
        return await self.cases.find_one({"_id": case_id})

    async def get_entitlement(self, entitlement_id: str) -> Doc | None:
        return await self.entitlements.find_one({"_id": entitlement_id})

    async def list_entitlements(self, query: Doc, limit: int = 200) -> list[Doc]:
        cursor = (
            self.entitlements.find(query, {"outbox": 0, "outbox_pending": 0, "id_card_hash": 0})
            .sort("created_at", DESCENDING)
            .limit(limit)
        )
        return await cursor.to_list(limit)

    # ---------------------------------------------------------------- the append-only ledger

    async def append_ledger(self, entry: Doc) -> tuple[bool, Doc]:
        """Append a payment once per idempotency key; on a duplicate return the entry already there."""
        try:
            await self.ledger.insert_one(entry)
            return True, entry
        except DuplicateKeyError:
            existing = await self.ledger.find_one({"idempotency_key": entry["idempotency_key"]})
            assert existing is not None
            return False, existing

    async def append_ledger_many(self, entries: list[Doc]) -> int:
        """Insert a batch unordered; entries already there (a resumed or repeated run) are skipped."""
        if not entries:
            return 0
        try:
            result = await self.ledger.insert_many(entries, ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    async def ledger_entries(self, query: Doc, limit: int = 1000) -> list[Doc]:
        cursor = self.ledger.find(query, {"_id": 0}).sort("recorded_at", ASCENDING).limit(limit)
        return await cursor.to_list(limit)

    async def ledger_count(self, query: Doc) -> int:
        return await self.ledger.count_documents(query)

    async def ledger_totals(self, query: Doc) -> Doc:
        """Count and sum (fen) of matching entries. One accumulator per $group: FerretDB 1.24 computes
        only the first accumulator of a $group stage (a second one comes back 0)."""
        cursor = await self.ledger.aggregate(
            [{"$match": query}, {"$group": {"_id": None, "fen": {"$sum": "$amount_fen"}}}]
        )
        rows = await cursor.to_list(1)
        return {"count": await self.ledger.count_documents(query), "fen": rows[0]["fen"] if rows else 0}

    async def paid_recipients(self, run_id: str) -> set[str]:
        """Every recipient the run already paid: one streaming read, so a repeat or resume skips them."""
        cursor = self.ledger.find({"run_id": run_id}, {"recipient_id": 1, "_id": 0}).batch_size(5000)
        return {d["recipient_id"] async for d in cursor}

    # ---------------------------------------------------------------- registry (P2.3)

    async def upsert_registry(self, docs: list[Doc], batch: int = 1000) -> int:
        """Insert or replace registry records by recipient id; returns how many were written.

        New records go in with unordered bulk inserts; existing ones are replaced one by one (bulk
        upserts are slow on FerretDB's SQLite backend: tens of milliseconds each)."""
        written = 0
        for i in range(0, len(docs), batch):
            chunk = docs[i : i + batch]
            existing = {
                d["_id"]
                for d in await self.registry.find({"_id": {"$in": [d["_id"] for d in chunk]}}, {"_id": 1}).to_list(None)
            }
            fresh = [d for d in chunk if d["_id"] not in existing]
            if fresh:
                try:
                    written += len((await self.registry.insert_many(fresh, ordered=False)).inserted_ids)
                except BulkWriteError as exc:  # inserted meanwhile by a concurrent import: replace below
                    if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                        raise
                    written += int(exc.details.get("nInserted", 0))
                    existing |= {fresh[e["index"]]["_id"] for e in exc.details["writeErrors"]}
            for doc in chunk:
                if doc["_id"] in existing:
                    await self.registry.replace_one({"_id": doc["_id"]}, doc, upsert=True)
                    written += 1
        return written

    async def registry_by_id_hash(self, id_card_hash: str) -> Doc | None:
        return await self.registry.find_one({"id_card_hash": id_card_hash})

    async def registry_by_id_hashes(self, id_card_hashes: list[str]) -> dict[str, Doc]:
        """Registry records by ID-card hash, in one batched read (the first record of a hash, as `find_one`)."""
        found: dict[str, Doc] = {}
        for doc in await find_by(self.registry, "id_card_hash", id_card_hashes):
            found.setdefault(doc["id_card_hash"], doc)
        return found

    async def registry_get(self, recipient_id: str) -> Doc | None:
        return await self.registry.find_one({"_id": recipient_id}, {"id_card_hash": 0})

    def registry_scan(self, districts: list[str], batch_size: int = 1000) -> Any:
        """A cursor over the districts' records by recipient id. One streaming cursor, not keyset pages:
        on FerretDB each page query costs a scan of the collection."""
        return (
            self.registry.find({"district": {"$in": districts}}, {"id_card_hash": 0, "name": 0})
            .sort("_id", ASCENDING)
            .batch_size(batch_size)
        )

    # ---------------------------------------------------------------- standards and runs

    async def added_standards(self) -> list[Doc]:
        return await self.standards.find({}, {"_id": 0}).to_list(10_000)

    async def add_standard(self, doc: Doc) -> bool:
        try:
            await self.standards.insert_one(doc)
        except DuplicateKeyError:
            return False
        return True

    async def create_run(self, doc: Doc) -> bool:
        return await insert_once(self.runs, doc)

    async def get_run(self, run_id: str) -> Doc | None:
        run = await self.runs.find_one({"_id": run_id})
        return await self._with_executions(run) if run else None

    async def list_runs(self, query: Doc, limit: int = 100) -> list[Doc]:
        runs = await self.runs.find(query).sort("opened_at", DESCENDING).limit(limit).to_list(limit)
        return [await self._with_executions(run) for run in runs]

    async def update_run(self, run_id: str, set_fields: Doc) -> None:
        await self.runs.update_one({"_id": run_id}, {"$set": set_fields})

    async def record_execution(self, run_id: str, execution: Doc) -> None:
        """One document per execution: concurrent executions of a run each keep their record (a `$push`
        onto the run would lose one on FerretDB, whose updates are read-then-write)."""
        await self.run_executions.insert_one({"run_id": run_id, **execution})

    async def _with_executions(self, run: Doc) -> Doc:
        cursor = self.run_executions.find({"run_id": run["_id"]}, {"_id": 0, "run_id": 0}).sort("started_at", ASCENDING)
        return run | {"executions": await cursor.to_list(None)}
