"""Relief's MongoDB access, every query of the service in one place: reads of cases and entitlements, the
append-only payment ledger, the registry, added standards and subsidy runs. Its methods take and return
the typed records (`services.relief.documents`, `services.relief.records`), never filter dicts.

Cases and entitlements are written only through the shared write path, `common.aggregates.Aggregates`
(`services.relief.documents`): FerretDB 1.24 has no transactions and concurrent updates of one document
can lose each other, so each write claims the document's next version through a unique index, and an
entitlement's outgoing events ride in the same document (`outbox`), so a state change and its event are
written together. Amounts are strings (Decimal to the fen) plus integer fen for sums (FerretDB has no
Decimal128).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Collection, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from common.aggregates import find_with_archive, may_be_archived
from common.principal import Principal
from common.store import bulk_update, create_query_indexes, find_by, insert_once
from services.relief.documents import ENTITLEMENT_FINAL, Entitlement, ReliefCase
from services.relief.domain.lifecycle import OPEN, Status
from services.relief.domain.parameters import RuleParameters
from services.relief.domain.personal import RegistrySearch, registry_equalities, registry_matches, registry_terms
from services.relief.domain.rules import Schedule
from services.relief.domain.standards import DibaoStandard
from services.relief.records import (
    Applicant,
    HukouAcknowledgement,
    LedgerEntry,
    RegistryRecord,
    ReturnImport,
    RunExecution,
    SubsidyRun,
)

DUPLICATE_KEY = 11000
RULE_PARAMETERS = "rule_parameters"  # the kind of an added rule parameter set in `standards`
RULE_PARAMETERS_SCOPE = "city"  # its district: rule parameters hold for the whole city
Doc = dict[str, Any]
DatedData = tuple[list[DibaoStandard], list[RuleParameters]]
# Left out of entitlement lists: the outbox is the write path's, the ID-card hash is never shown.
LISTED_WITHOUT = {"outbox": 0, "outbox_pending": 0, "id_card_hash": 0}


def _scoped(district: str | None, **equal: Any) -> Doc:
    """Equality filters; `district` None is city level (every district)."""
    query = {k: v for k, v in equal.items() if v is not None}
    return query if district is None else query | {"district": district}


def _filed(doc: Doc) -> Doc:
    """A registry record as stored: with the terms its search finds it by."""
    return doc | {"terms": registry_terms(doc.get("name"), doc.get("id_card_masked"))}


def _may_match_archived(query: Doc) -> bool:
    """Whether archived entitlements (paid, rejected or cancelled) can match the query's status."""
    status = query.get("status")
    if status is None:
        return True
    if isinstance(status, dict) and "$in" not in status:
        return True  # another operator: ask the archive too
    wanted = status["$in"] if isinstance(status, dict) else [status]
    return bool({str(s) for s in wanted} & set(ENTITLEMENT_FINAL))


class ReliefStore:
    def __init__(
        self, db: AsyncDatabase[Doc], *, archive_after: timedelta | None = None, dated_data_ttl_s: float = 0.0
    ) -> None:
        self.db = db
        self.cases = db["cases"]
        self.entitlements = db["entitlements"]
        # Evaluated cases and grants paid, rejected or cancelled leave the working set once unchanged for
        # `archive_after` (`documents.CASE_FINISHED`, `ENTITLEMENT_FINISHED`): still read by id and listed
        # with the rest; nothing to approve or pay is ever there (the desk and the payment file read the
        # working set). A later event brings one back.
        self.cases_archive = db["cases_archive"]
        self.entitlements_archive = db["entitlements_archive"]
        self.archive_after = archive_after
        self.ledger = db["ledger"]
        self.registry = db["registry"]
        self.standards = db["standards"]
        self.runs = db["runs"]
        self.run_executions = db["run_executions"]
        self.applicants = db["applicants"]  # insert-only, one per case: who a grant pays
        self.audit = db["audit"]  # insert-only: reads of personal data and payment exports (who, when, why)
        self.hukou_acks = db["hukou_acknowledgements"]  # insert-only, one per P5.2d notice
        self.payment_returns = db["payment_returns"]  # insert-only, one per imported bank return file
        # What an admin added to the standards, as last read (`added_dated_data(cached=True)`): its time of
        # reading and a generation that this process's own additions advance, so none is ever missed here.
        self.dated_data_ttl_s = dated_data_ttl_s
        self._dated: tuple[float, DatedData] | None = None
        self._dated_generation = 0

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
                (self.registry, [("terms", ASCENDING)]),
                (self.entitlements, [("hukou_notice_district", ASCENDING)]),
                (self.payment_returns, [("file_sha256", ASCENDING)]),
                (self.audit, [("actor", ASCENDING), ("at", ASCENDING)]),
            ],
        )
        await self.standards.create_index([("district", ASCENDING), ("effective_from", ASCENDING)], unique=True)
        await self.ensure_care_indexes()

    # ---------------------------------------------------------------- cases and entitlements (reads)
    # Both are written only through `common.aggregates` (`services.relief.documents`).

    async def get_case(self, case_id: str) -> ReliefCase | None:
        doc = await self._by_id(self.cases, self.cases_archive, case_id)
        return ReliefCase.from_document(doc) if doc is not None else None

    async def get_entitlement(self, entitlement_id: str) -> Entitlement | None:
        doc = await self._by_id(self.entitlements, self.entitlements_archive, entitlement_id)
        return Entitlement.from_document(doc) if doc is not None else None

    async def _by_id(self, live: AsyncCollection[Doc], archive: AsyncCollection[Doc], doc_id: str) -> Doc | None:
        """From the working set, or else (one old enough to be archived) from the archive."""
        return (await find_with_archive(live, archive, [doc_id], self._may_be_archived)).get(doc_id)

    def _may_be_archived(self, doc_id: str) -> bool:
        return may_be_archived(doc_id, self.archive_after)

    async def list_entitlements(
        self,
        *,
        district: str | None,
        status: str | None = None,
        rule_id: str | None = None,
        case_id: str | None = None,
        limit: int = 200,
    ) -> list[Entitlement]:
        """Entitlements of a district (None: all), newest first, without their outboxes (`LISTED_WITHOUT`):
        to show, not to write back."""
        query = _scoped(district, status=status or None, rule_id=rule_id or None, case_id=case_id or None)
        return await self._entitlements(query, limit)

    async def open_entitlements_of_case(self, case_id: str) -> list[Entitlement]:
        """A case's entitlements still open (proposed or waiting for a second approval)."""
        return await self._entitlements({"case_id": case_id, "status": {"$in": [str(s) for s in OPEN]}}, 200)

    async def payable_entitlements(self, *, district: str | None, limit: int = 5000) -> list[Entitlement]:
        """Approved one-time grants and running or stopped monthly ones: what the bank may be asked to pay."""
        query = _scoped(
            district,
            status={"$in": [str(Status.APPROVED), str(Status.STOPPED)]},
            schedule={"$in": [str(Schedule.ONCE), str(Schedule.MONTHLY)]},
        )
        return await self._entitlements(query, limit)

    async def entitlements_by_ids(self, ids: Sequence[str]) -> dict[str, Entitlement]:
        """Entitlements by id, in one batched read (`find_by`), without their outboxes."""
        docs = await find_with_archive(
            self.entitlements, self.entitlements_archive, ids, self._may_be_archived, LISTED_WITHOUT
        )
        return {doc_id: Entitlement.from_document(doc) for doc_id, doc in docs.items()}

    async def hukou_notices(self, *, hukou_district: str | None, paying_district: str | None) -> list[Entitlement]:
        """Grants whose P5.2d notice went out (a hukou district elsewhere, paid at least once): those told to
        `hukou_district`, or those `paying_district` told (None: every district), newest first."""
        query: Doc = {"payments": {"$gt": 0}}
        if hukou_district is not None:
            query["hukou_notice_district"] = hukou_district
        else:
            query["hukou_notice_district"] = {"$ne": None}
        if paying_district is not None:
            query["district"] = paying_district
        return await self._entitlements(query, 500)

    async def _entitlements(self, query: Doc, limit: int) -> list[Entitlement]:
        """Newest first, the archive's too unless the query asks for statuses never archived (a worklist).
        An archived grant can be newer than one still worked on (refused by its rule at once, archived a week
        later, while an older proposal waits): when the working set fills the page, the archived ones newer
        than its oldest are merged in. A grant in both (brought back, its archived copy not yet deleted)
        is listed once, as the working set has it."""
        cursor = self.entitlements.find(query, LISTED_WITHOUT).sort("created_at", DESCENDING).limit(limit)
        docs = await cursor.to_list(limit)
        if _may_match_archived(query):
            where = query if len(docs) < limit else query | {"created_at": {"$gt": docs[-1]["created_at"]}}
            older = self.entitlements_archive.find(where, LISTED_WITHOUT).sort("created_at", DESCENDING).limit(limit)
            live = {doc["_id"] for doc in docs}
            archived = [doc for doc in await older.to_list(limit) if doc["_id"] not in live]
            if archived:
                docs = sorted([*docs, *archived], key=lambda d: d["created_at"], reverse=True)[:limit]
        return [Entitlement.from_document(doc) for doc in docs]

    # ---------------------------------------------------------------- the append-only ledger

    async def append_ledger(self, entry: LedgerEntry) -> tuple[bool, LedgerEntry]:
        """Append a payment once per idempotency key; on a duplicate return the entry already there."""
        try:
            await self.ledger.insert_one(entry.to_document())
            return True, entry
        except DuplicateKeyError:
            existing = await self.ledger_entry(entry.idempotency_key)
            assert existing is not None
            return False, existing

    async def append_ledger_many(self, entries: Sequence[LedgerEntry]) -> int:
        """Insert a batch unordered; entries already there (a resumed or repeated run) are skipped."""
        if not entries:
            return 0
        try:
            result = await self.ledger.insert_many([e.to_document() for e in entries], ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            return int(exc.details.get("nInserted", 0))

    async def append_ledger_batch(self, entries: Sequence[LedgerEntry]) -> list[LedgerEntry | None]:
        """Insert payments in one unordered write; for each, None if inserted now, else the entry that was
        there already under its idempotency key (a concurrent or earlier recording: nothing paid twice)."""
        if not entries:
            return []
        duplicates: set[int] = set()
        try:
            await self.ledger.insert_many([e.to_document() for e in entries], ordered=False)
        except BulkWriteError as exc:
            errors = exc.details.get("writeErrors", [])
            if any(e.get("code") != DUPLICATE_KEY for e in errors):
                raise
            duplicates = {int(e["index"]) for e in errors}
        keys = [entries[i].idempotency_key for i in sorted(duplicates)]
        found = {d["idempotency_key"]: d for d in await find_by(self.ledger, "idempotency_key", keys, {"_id": 0})}
        return [
            LedgerEntry.model_validate(found[e.idempotency_key]) if i in duplicates else None
            for i, e in enumerate(entries)
        ]

    async def ledger_entry(self, idempotency_key: str) -> LedgerEntry | None:
        doc = await self.ledger.find_one({"idempotency_key": idempotency_key}, {"_id": 0})
        return LedgerEntry.model_validate(doc) if doc is not None else None

    async def ledger_of_case(self, case_id: str, *, district: str | None) -> list[LedgerEntry]:
        """Every payment of a case (in `district`; None: all), oldest first."""
        return await self._ledger(_scoped(district, case_id=case_id))

    async def ledger_of_recipients(self, recipient_ids: Collection[str], *, district: str | None) -> list[LedgerEntry]:
        """Every payment to these recipient ids (in `district`; None: all), oldest first."""
        return await self._ledger(_scoped(district, recipient_id={"$in": sorted(recipient_ids)}))

    async def _ledger(self, query: Doc, limit: int = 1000) -> list[LedgerEntry]:
        cursor = self.ledger.find(query, {"_id": 0}).sort("recorded_at", ASCENDING).limit(limit)
        return [LedgerEntry.model_validate(doc) for doc in await cursor.to_list(limit)]

    async def has_payments(self, entitlement_id: str) -> bool:
        return bool(await self.ledger.count_documents({"entitlement_id": entitlement_id}))

    async def run_ledger_count(self, run_id: str) -> int:
        return await self.ledger.count_documents({"run_id": run_id})

    async def run_totals(self, run_id: str) -> tuple[int, int]:
        """Count and sum (fen) of a run's entries. One accumulator per $group: FerretDB 1.24 computes
        only the first accumulator of a $group stage (a second one comes back 0)."""
        query = {"run_id": run_id}
        cursor = await self.ledger.aggregate(
            [{"$match": query}, {"$group": {"_id": None, "fen": {"$sum": "$amount_fen"}}}]
        )
        rows = await cursor.to_list(1)
        return await self.ledger.count_documents(query), int(rows[0]["fen"]) if rows else 0

    async def paid_recipients(self, run_id: str) -> set[str]:
        """Every recipient the run already paid: one streaming read, so a repeat or resume skips them."""
        cursor = self.ledger.find({"run_id": run_id}, {"recipient_id": 1, "_id": 0}).batch_size(5000)
        return {d["recipient_id"] async for d in cursor}

    # ---------------------------------------------------------------- registry (P2.3)

    async def upsert_registry(self, records: Sequence[RegistryRecord], batch: int = 1000) -> int:
        """Insert or replace registry records by recipient id; returns how many were written.

        New records go in with unordered bulk inserts; existing ones are replaced one by one (bulk
        upserts are slow on FerretDB's SQLite backend: tens of milliseconds each)."""
        docs = [_filed(record.to_document()) for record in records]
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

    async def registry_by_id_hash(self, id_card_hash: str) -> RegistryRecord | None:
        doc = await self.registry.find_one({"id_card_hash": id_card_hash})
        return RegistryRecord.model_validate(doc) if doc is not None else None

    async def registry_by_id_hashes(self, id_card_hashes: list[str]) -> dict[str, RegistryRecord]:
        """Registry records by ID-card hash, in one batched read (the first record of a hash, as `find_one`)."""
        found: dict[str, RegistryRecord] = {}
        for doc in await find_by(self.registry, "id_card_hash", id_card_hashes):
            if doc["id_card_hash"] not in found:
                found[doc["id_card_hash"]] = RegistryRecord.model_validate(doc)
        return found

    async def registry_get(self, recipient_id: str) -> RegistryRecord | None:
        """One record, without its ID-card hash."""
        doc = await self.registry.find_one({"_id": recipient_id}, {"id_card_hash": 0})
        return RegistryRecord.model_validate(doc) if doc is not None else None

    async def registry_scan(self, districts: list[str], batch_size: int = 1000) -> AsyncIterator[RegistryRecord]:
        """The districts' records by recipient id, without names and ID-card hashes. One streaming cursor,
        not keyset pages: on FerretDB each page query costs a scan of the collection."""
        cursor = (
            self.registry.find({"district": {"$in": districts}}, {"id_card_hash": 0, "name": 0})
            .sort("_id", ASCENDING)
            .batch_size(batch_size)
        )
        async for doc in cursor:
            yield RegistryRecord.model_validate(doc)

    async def search_registry(
        self,
        search: RegistrySearch | None,
        *,
        district: str | None,
        category: str | None,
        page: int,
        page_size: int,
    ) -> tuple[list[RegistryRecord], int]:
        """A page of registry records (by recipient id, without ID-card hashes) and how many match.

        By equality only (`registry_equalities`: a term of the name or of the shown ID-card digits, a hash,
        a recipient id), the candidates decided and sorted here: one read of the few records a term finds,
        where a regex and a sort made FerretDB decode the whole registry, and the count a second time."""
        scope: Doc = _scoped(district, categories=category or None)
        if search is None:
            found = await self.registry.find(scope, {"id_card_hash": 0, "terms": 0}).to_list(None)
        else:
            reads = [
                self.registry.find(scope | equality, {"terms": 0}).to_list(None)
                for equality in registry_equalities(search)
            ]
            candidates = {doc["_id"]: doc for docs in await asyncio.gather(*reads) for doc in docs}
            found = [doc for doc in candidates.values() if registry_matches(search, doc)]
        found.sort(key=lambda doc: doc["_id"])
        start = (page - 1) * page_size
        page_docs = [{k: v for k, v in doc.items() if k != "id_card_hash"} for doc in found[start : start + page_size]]
        return [RegistryRecord.model_validate(doc) for doc in page_docs], len(found)

    async def file_registry_terms(self, batch: int = 500) -> int:
        """File the records written before the registry search had terms (once, at start-up, in the
        background); returns how many. Idempotent: a record that has its terms is left as it is."""
        filed = 0
        cursor = self.registry.find({"terms": {"$exists": False}}, {"id_card_hash": 0}).batch_size(batch)
        chunk: list[Doc] = []
        async for doc in cursor:
            chunk.append(doc)
            if len(chunk) >= batch:
                filed += await self._file_terms(chunk)
                chunk = []
        if chunk:
            filed += await self._file_terms(chunk)
        return filed

    async def _file_terms(self, docs: list[Doc]) -> int:
        terms = {doc["_id"]: registry_terms(doc.get("name"), doc.get("id_card_masked")) for doc in docs}
        await bulk_update(
            self.registry,
            [UpdateOne({"_id": i, "terms": {"$exists": False}}, {"$set": {"terms": t}}) for i, t in terms.items()],
        )
        return len(docs)

    # ---------------------------------------------------------------- applicants and personal data

    async def add_applicants(self, applicants: Sequence[Applicant]) -> int:
        """Insert the applicants of new cases; one already there (a redelivered help request) stays as it is."""
        if not applicants:
            return 0
        try:
            result = await self.applicants.insert_many([a.to_document() for a in applicants], ordered=False)
            return len(result.inserted_ids)
        except BulkWriteError as exc:
            if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                raise
            return int(exc.details.get("nInserted", 0))

    async def applicants_of(self, case_ids: Sequence[str], *, in_clear: bool = False) -> dict[str, Applicant]:
        """The cases' applicants in one batched read; the ID-card and phone numbers only masked unless
        `in_clear` (the payment export and a phone reveal, which the caller audits)."""
        projection = None if in_clear else {"id_card": 0, "phone": 0}
        docs = await find_by(self.applicants, "_id", list(case_ids), projection)
        return {doc["_id"]: Applicant.model_validate(doc) for doc in docs}

    async def record_audit(self, who: Principal, *, action: str, reason: str, **details: Any) -> None:
        """Who read or handed out personal data, when and why (ARCHITECTURE.md, Security); insert-only."""
        await self.audit.insert_one(
            {
                "at": datetime.now(UTC),
                "actor": who.sub,
                "shown_as": who.shown_as,
                "role": str(who.role),
                "district": who.district,
                "action": action,
                "reason": reason,
                **details,
            }
        )

    async def audit_trail(self, *, action: str | None = None, limit: int = 200) -> list[Doc]:
        query = {"action": action} if action else {}
        return await self.audit.find(query, {"_id": 0}).sort("at", DESCENDING).limit(limit).to_list(limit)

    # ---------------------------------------------------------------- P5.2d notices and bank returns

    async def hukou_acknowledgements(self, grant_ids: Sequence[str]) -> dict[str, HukouAcknowledgement]:
        docs = await find_by(self.hukou_acks, "_id", list(grant_ids))
        return {doc["_id"]: HukouAcknowledgement.model_validate(doc) for doc in docs}

    async def acknowledge_hukou(self, ack: HukouAcknowledgement) -> tuple[bool, HukouAcknowledgement]:
        """Acknowledge a notice once; a second acknowledgement returns the first."""
        if await insert_once(self.hukou_acks, ack.to_document()):
            return True, ack
        doc = await self.hukou_acks.find_one({"_id": ack.grant_id})
        assert doc is not None  # the insert was refused as a duplicate of this id
        return False, HukouAcknowledgement.model_validate(doc)

    async def earlier_return_import(self, file_sha256: str, district: str | None) -> ReturnImport | None:
        """The first import of the same file in the same district, if there was one."""
        cursor = self.payment_returns.find({"file_sha256": file_sha256, "district": district}, {"lines": 0})
        docs = await cursor.sort("at", ASCENDING).limit(1).to_list(1)
        return ReturnImport.model_validate(docs[0]) if docs else None

    async def record_return_import(self, record: ReturnImport) -> None:
        await self.payment_returns.insert_one(record.to_document())

    # ---------------------------------------------------------------- standards and runs

    async def added_standards(self) -> list[DibaoStandard]:
        """The standards an admin added at run time (merged with the shipped file)."""
        return (await self.added_dated_data())[0]

    async def added_dated_data(self, *, cached: bool = False) -> DatedData:
        """What an admin added at run time, in one read of the small `standards` collection: dibao standards
        and rule parameter sets (`kind: rule_parameters`), each merged with its shipped file.

        `cached`: the last read's answer while it is younger than `dated_data_ttl_s`, for the intake's
        batches (otherwise one read per batch, most of a surge's). An addition through this process is seen
        at once; one through another relief process within `dated_data_ttl_s`. The admin's own views and
        checks read afresh."""
        if cached and self._dated is not None and time.monotonic() - self._dated[0] < self.dated_data_ttl_s:
            return self._dated[1]
        generation, read_at = self._dated_generation, time.monotonic()
        fields = DibaoStandard.model_fields
        standards: list[DibaoStandard] = []
        parameters: list[RuleParameters] = []
        for doc in await self.standards.find({}, {"_id": 0}).to_list(10_000):
            if doc.get("kind") == RULE_PARAMETERS:
                parameters.append(RuleParameters.model_validate(doc["parameters"]))
            else:
                standards.append(DibaoStandard.model_validate({k: v for k, v in doc.items() if k in fields}))
        if generation == self._dated_generation:  # no addition of this process's since the read began
            self._dated = (read_at, (standards, parameters))
        return standards, parameters

    def _added(self) -> None:
        self._dated_generation += 1
        self._dated = None

    async def add_rule_parameters(self, parameters: RuleParameters, added_by: str) -> bool:
        """Store an added rule parameter set beside the added standards (the same unique (district, date) key,
        with the city as its district: one set per date); False if one of the same date was added before."""
        doc = {
            "kind": RULE_PARAMETERS,
            "district": RULE_PARAMETERS_SCOPE,
            "effective_from": parameters.effective_from.isoformat(),
            "parameters": parameters.model_dump(mode="json"),
            "added_by": added_by,
        }
        try:
            await self.standards.insert_one(doc)
        except DuplicateKeyError:
            return False
        finally:
            self._added()
        return True

    async def add_standard(self, standard: DibaoStandard, added_by: str) -> bool:
        """Store an added standard (its document: the standard as JSON and who added it); False if one of the
        same district and date was added before."""
        try:
            await self.standards.insert_one(standard.model_dump(mode="json") | {"added_by": added_by})
        except DuplicateKeyError:
            return False
        finally:
            self._added()
        return True

    async def create_run(self, run: SubsidyRun) -> bool:
        return await insert_once(self.runs, run.to_document())

    async def get_run(self, run_id: str) -> SubsidyRun | None:
        run = await self.runs.find_one({"_id": run_id})
        return await self._with_executions(run) if run else None

    async def list_runs(self, *, scope: str | None, limit: int = 100) -> list[SubsidyRun]:
        """Runs of a scope (a district, or `city`; None: every scope), newest first."""
        query = {} if scope is None else {"scope": scope}
        runs = await self.runs.find(query).sort("opened_at", DESCENDING).limit(limit).to_list(limit)
        return [await self._with_executions(run) for run in runs]

    async def run_started(self, run_id: str, at: datetime) -> None:
        await self.runs.update_one({"_id": run_id}, {"$set": {"status": "running", "last_started_at": at}})

    async def run_completed(self, run_id: str, *, paid_count: int, paid_fen: int, eligible: int, at: datetime) -> None:
        fields = {
            "status": "completed",
            "paid_count": paid_count,
            "paid_fen": paid_fen,
            "eligible": eligible,
            "last_finished_at": at,
        }
        await self.runs.update_one({"_id": run_id}, {"$set": fields})

    async def record_execution(self, run_id: str, execution: RunExecution) -> None:
        """One document per execution: concurrent executions of a run each keep their record (a `$push`
        onto the run would lose one on FerretDB, whose updates are read-then-write)."""
        await self.run_executions.insert_one({"run_id": run_id, **execution.to_document()})

    async def _with_executions(self, run: Doc) -> SubsidyRun:
        cursor = self.run_executions.find({"run_id": run["_id"]}, {"_id": 0, "run_id": 0}).sort("started_at", ASCENDING)
        return SubsidyRun.model_validate(run | {"executions": await cursor.to_list(None)})

    # ---------------------------------------------------------------- the care register (P2.2, P5.3)
    # Entries are written only through `common.aggregates` (`services.relief.care`); visits are insert-only
    # beside them; the visits due are an insert-only schedule, one collection per month of the day the
    # sweep looks at them (`care_due_<YYYYMM>`), so a sweep reads one day of one small collection.

    async def ensure_care_indexes(self) -> None:
        await create_query_indexes(
            self.db,
            [
                (self.db["care_entries"], [("worker", ASCENDING), ("status", ASCENDING)]),
                (self.db["care_entries"], [("district", ASCENDING), ("status", ASCENDING)]),
                (self.db["care_visits"], [("entry_id", ASCENDING), ("visited_on", ASCENDING)]),
            ],
        )

    async def care_entries(
        self,
        *,
        worker: str | None = None,
        district: str | None = None,
        status: str | None = "active",
        limit: int = 1000,
    ) -> list[Doc]:
        """Register entries (equality filters only: pushed down on FerretDB), without their outboxes."""
        query = _scoped(district, worker=worker, status=status)
        cursor = self.db["care_entries"].find(query, {"outbox": 0}).sort("next_due_on", ASCENDING).limit(limit)
        return await cursor.to_list(limit)

    async def care_entry(self, entry_id: str) -> Doc | None:
        return await self.db["care_entries"].find_one({"_id": entry_id}, {"outbox": 0})

    async def add_care_visit(self, visit: Doc) -> bool:
        """The visit in the insert-only history (`_id` its natural id); False if it was there already."""
        return await insert_once(self.db["care_visits"], visit)

    async def care_visits(self, entry_id: str, limit: int = 500) -> list[Doc]:
        """A person's whole visit history, newest first (a detail view; the entry holds the latest ones)."""
        cursor = self.db["care_visits"].find({"entry_id": entry_id}).sort("visited_on", DESCENDING).limit(limit)
        return await cursor.to_list(limit)

    async def schedule_care_due(self, items: Sequence[tuple[str, str, str, str]]) -> None:
        """Insert (entry id, due day, check day, kind) into the schedule; one already there stays as it is.
        `kind` is `visit` (is the visit missed?) or a discovery rule's id (is it still not made?)."""
        by_month: dict[str, list[Doc]] = {}
        for entry_id, due_on, check_on, kind in items:
            doc = {
                "_id": f"{entry_id}|{due_on}" + ("" if kind == "visit" else f"|{kind}"),
                "entry_id": entry_id,
                "due_on": due_on,
                "check_on": check_on,
                "kind": kind,
            }
            by_month.setdefault(_month_of(check_on), []).append(doc)
        for month, docs in by_month.items():
            try:
                await self.db[f"care_due_{month}"].insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                if any(e.get("code") != DUPLICATE_KEY for e in exc.details.get("writeErrors", [])):
                    raise

    async def care_due_checked_on(self, day: str) -> list[tuple[str, str, str]]:
        """The (entry id, due day, kind) items the sweep looks at on `day` (one equality query)."""
        docs = await self.db[f"care_due_{_month_of(day)}"].find({"check_on": day}).to_list(None)
        return [(doc["entry_id"], doc["due_on"], doc.get("kind", "visit")) for doc in docs]

    async def registry_records(self, recipient_ids: Sequence[str], batch: int = 1000) -> dict[str, RegistryRecord]:
        """Registry records by recipient id, as they stand (an import compares them with its rows, P2.3)."""
        found: dict[str, RegistryRecord] = {}
        ids = list(recipient_ids)
        for i in range(0, len(ids), batch):
            for doc in await find_by(self.registry, "_id", ids[i : i + batch], {"id_card_hash": 0}):
                found[doc["_id"]] = RegistryRecord.model_validate(doc)
        return found

    async def care_days_swept(self, days: Sequence[str]) -> set[str]:
        return {doc["_id"] for doc in await find_by(self.db["care_sweeps"], "_id", list(days), {"_id": 1})}

    async def mark_care_day_swept(self, day: str) -> None:
        await insert_once(self.db["care_sweeps"], {"_id": day, "at": datetime.now(UTC)})


def _month_of(day: str) -> str:
    return day[:7].replace("-", "")
