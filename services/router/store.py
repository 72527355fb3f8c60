"""The router's MongoDB access: one document per case (its tasks embedded), in a working set (`cases`)
and an archive of long-closed ones (`cases_archive`). Changes to a case go through the shared write path
(`common.aggregates`, built over these collections by `CaseService`); this module holds the intake's batch
insert and the queries.

Beside the cases, written once and never updated (cheap on FerretDB, and the case document stays small):
`case_details` (the clear who-and-where of each request, with the keyed hashes its caller is found by),
`reveals` (the audit record of every reveal of a caller's personal fields), `escalation_answers` (which
escalation was answered, when, by whom). `escalations` holds the escalations still waiting for a
department's answer: small, as an answered one is deleted.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

import pydantic_core
import pymongo
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from common.aggregates import find_with_archive
from common.store import create_query_indexes, find_by, insert_once
from contracts.events import utcnow
from services.router.domain.case import Case, CaseStatus, queue_key
from services.router.domain.details import CaseDetails, RevealRecord
from services.router.domain.escalations import Escalation

EARLIER_AT_MOST = 20  # earlier cases of one caller shown


class RouterStore:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], *, batch_timeout_s: float = 30.0) -> None:
        self.db = db
        self.batch_timeout_s = batch_timeout_s
        self.cases = db["cases"]
        self.archive = db["cases_archive"]
        self.claims = db["case_claims"]
        self.details = db["case_details"]
        self.reveals = db["reveals"]
        self.escalations = db["escalations"]
        self.answers = db["escalation_answers"]
        # Whether the archive can hold a case: `CaseService` hands in its write path's rule
        # (`Aggregates.may_be_archived`), so a case numbered within the archive age is never looked for in
        # the archive (the whole history; on FerretDB a lookup there scans it all).
        self.may_be_archived: Callable[[str], bool] = lambda _case_id: True

    async def ensure_indexes(self) -> None:
        await create_query_indexes(
            self.db,
            [
                (self.cases, [("queue_keys", ASCENDING)]),
                (self.cases, [("district", ASCENDING), ("status", ASCENDING)]),
                (self.cases, [("outbox_pending", ASCENDING), ("updated_at", ASCENDING)]),
                (self.details, [("lookup_keys", ASCENDING)]),
                (self.reveals, [("case_id", ASCENDING)]),
                (self.escalations, [("department", ASCENDING), ("district", ASCENDING)]),
            ],
        )

    async def insert_cases(
        self, cases: list[tuple[Case, list[dict[str, Any]]]], remember: Callable[[dict[str, Any]], None] | None = None
    ) -> dict[str, bool]:
        """Record new cases in one `insert_many`; case id -> False where it was already there (redelivery).
        `remember` is handed each document inserted (the write path's memory of what it stored)."""
        if not cases:
            return {}
        now = utcnow()
        docs = []
        for case, entries in cases:
            doc = case.to_document()
            doc["initial_events"], doc["updated_at"] = pydantic_core.to_json(entries).decode(), now
            docs.append(doc)
        duplicates: set[int] = set()
        try:
            # Bounded: a batch write that hangs (seen with concurrent bulk writers on FerretDB/SQLite) fails
            # and is retried, instead of holding its partitions and stalling the consumer group.
            with pymongo.timeout(self.batch_timeout_s):
                await self.cases.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != 11000 for e in errors):
                raise
            duplicates = {e["index"] for e in errors}
        if remember is not None:
            for i, doc in enumerate(docs):
                if i not in duplicates:
                    remember(doc)
        return {case.case_id: i not in duplicates for i, (case, _) in enumerate(cases)}

    async def get(self, case_id: str) -> Case | None:
        """The case, from the working set or else from the archive."""
        doc = await self._one(case_id)
        return Case.from_document(doc) if doc else None

    async def _one(self, case_id: str, projection: dict[str, Any] | None = None) -> dict[str, Any] | None:
        return (await find_with_archive(self.cases, self.archive, [case_id], self.may_be_archived, projection)).get(
            case_id
        )

    async def archived(self, case_ids: list[str]) -> set[str]:
        """Which of these cases are in the archive (one batched read; only those it can hold)."""
        older = [case_id for case_id in case_ids if self.may_be_archived(case_id)]
        return {doc["_id"] for doc in await find_by(self.archive, "_id", older, {"_id": 1})} if older else set()

    async def first_dispatch(self, case_id: str) -> tuple[str | None, list[dict[str, Any]]]:
        """The request a case was opened by and the events it was first dispatched with (republished as they
        were on redelivery)."""
        doc = await self._one(case_id, {"initial_events": 1, "request_event_id": 1}) or {}
        return doc.get("request_event_id"), json.loads(doc.get("initial_events") or "[]")

    async def queue(
        self,
        department: str,
        district: str,
        statuses: Iterable[str],
        limit: int = 200,
        *,
        awaiting_co_handlers: bool = False,
    ) -> list[Case]:
        """Cases with a task of this department and district in one of `statuses` (and, with
        `awaiting_co_handlers`, cases it resolved that still wait for a co-handler): emergencies first,
        oldest first."""
        query: dict[str, Any] = {"queue_keys": {"$in": [queue_key(department, district, s) for s in statuses]}}
        if awaiting_co_handlers:
            waiting = {"queue_keys": queue_key(department, district, "resolved"), "status": "awaiting_co_handlers"}
            query = {"$or": [query, waiting]}
        return await self._sorted(query, limit)

    async def district_cases(self, district: str | None, statuses: Iterable[str], limit: int = 200) -> list[Case]:
        query: dict[str, Any] = {"status": {"$in": list(statuses)}}
        if district is not None:
            query["district"] = district
        return await self._sorted(query, limit)

    async def _sorted(self, query: dict[str, Any], limit: int) -> list[Case]:
        """Emergencies first, then the oldest. Sorted here, not by the store: FerretDB 1.24 sorts in its own
        process after reading whole documents (measured: 5.7 s for 10,000 cases, against 0.2 s unsorted)."""
        docs = await self.cases.find(query).to_list(None)
        docs.sort(key=lambda d: (not d.get("emergency"), d.get("received_at")))
        return [Case.from_document(doc) for doc in docs[:limit]]

    # ---- who and where: the clear record of each request, written once ----

    async def insert_details(self, records: list[tuple[Case, CaseDetails, tuple[str, ...]]]) -> None:
        """Record each new case's clear details and lookup keys in one `insert_many`; a redelivered request
        finds its record already there (the first one stays)."""
        if not records:
            return
        docs = [
            {
                "_id": case.case_id,
                "request_event_id": case.request_event_id,
                "received_at": case.received_at,
                "needs": list(case.needs),
                "lookup_keys": list(keys),
                "details": details.model_dump_json(exclude_none=True),
            }
            for case, details, keys in records
        ]
        try:
            with pymongo.timeout(self.batch_timeout_s):
                await self.details.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def case_details(self, case: Case) -> CaseDetails | None:
        """The clear details the request that opened `case` carried (None for a case from before they were
        kept, or a record of another request with the same case id)."""
        doc = await self.details.find_one({"_id": case.case_id})
        if not doc or doc.get("request_event_id") != case.request_event_id:
            return None
        return CaseDetails.model_validate_json(doc["details"])

    async def lookup_keys_of(self, case_id: str) -> list[str]:
        doc = await self.details.find_one({"_id": case_id}, {"lookup_keys": 1})
        return list((doc or {}).get("lookup_keys") or [])

    async def earlier_cases(self, case: Case, keys: list[str]) -> list[tuple[str, datetime, list[str], CaseStatus]]:
        """Other cases of the same caller (a lookup key in common), received before `case`, newest first:
        (case id, received at, needs, status now)."""
        if not keys:
            return []
        found = await find_by(self.details, "lookup_keys", keys, {"received_at": 1, "needs": 1})
        found = [d for d in found if d["_id"] != case.case_id and d["received_at"] <= case.received_at]
        found.sort(key=lambda d: d["received_at"], reverse=True)
        found = found[:EARLIER_AT_MOST]
        ids = [d["_id"] for d in found]
        found_ids = await find_with_archive(self.cases, self.archive, ids, self.may_be_archived, {"status": 1})
        status: dict[str, CaseStatus] = {case_id: doc["status"] for case_id, doc in found_ids.items()}
        return [
            (d["_id"], d["received_at"], list(d.get("needs") or []), status[d["_id"]])
            for d in found
            if d["_id"] in status
        ]

    # ---- reveals: append-only audit records ----

    async def record_reveal(self, record: RevealRecord) -> None:
        doc = record.model_dump(mode="python")
        doc["_id"] = doc.pop("reveal_id")
        doc["fields"] = list(record.fields)
        await self.reveals.insert_one(doc)

    async def reveals_of(self, case_id: str, department: str | None = None) -> list[RevealRecord]:
        """A case's reveal records, oldest first (only one department's when `department` is given)."""
        where = {"department": department} if department else None
        docs = await find_by(self.reveals, "case_id", [case_id], where=where)
        docs.sort(key=lambda d: d["at"])
        return [RevealRecord.model_validate({**d, "reveal_id": d["_id"]}) for d in docs]

    # ---- escalations waiting for a department's answer ----

    async def add_escalations(self, escalations: list[Escalation]) -> None:
        """Keep escalations to be answered (a redelivered one is already there)."""
        if not escalations:
            return
        docs = [{"_id": e.escalation_event_id, **e.model_dump(mode="python")} for e in escalations]
        try:
            await self.escalations.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise

    async def escalation(self, escalation_event_id: str) -> Escalation | None:
        doc = await self.escalations.find_one({"_id": escalation_event_id})
        return Escalation.model_validate(doc) if doc else None

    async def open_escalations(self, department: str | None, district: str | None) -> list[Escalation]:
        """Escalations waiting for an answer: of one department (when given) in one district (when given),
        the earliest due first."""
        query: dict[str, Any] = {}
        if department is not None:
            query["department"] = department
        if district is not None:
            query["district"] = district
        docs = await self.escalations.find(query).to_list(None)
        docs.sort(key=lambda d: (d["due_at"], d["escalated_at"]))
        return [Escalation.model_validate(d) for d in docs]

    async def close_escalation(self, escalation: Escalation, *, at: datetime, by: str) -> None:
        """An answered escalation: recorded as answered (written once), then off the open list."""
        await insert_once(
            self.answers,
            {"_id": escalation.escalation_event_id, "case_id": escalation.case_id, "at": at, "by": by},
        )
        await self.escalations.delete_one({"_id": escalation.escalation_event_id})

    async def answer_of(self, escalation_event_id: str) -> tuple[datetime, str] | None:
        """When and by whom an escalation was answered, if it was."""
        doc = await self.answers.find_one({"_id": escalation_event_id})
        return (doc["at"], doc["by"]) if doc else None
