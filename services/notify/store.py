"""Notify's MongoDB access: case clocks, the coordinator's queries over them, caller contacts, the
notification outbox, fired SLA events, and the durable timer wheels. Every query notify sends is here.

One document per case holds its clocks (the state), the flat facts the views filter on, the timers it
placed, the ids of the events already applied and an outbox of effects; it is changed only through the
shared write path (`common.aggregates`, built over `cases` by the clockwork), so one event changes it
once, even with several notify instances. A finished case, once left alone for the archive age, moves to
`cases_archive`, and its contact, its delivered texts and alerts and its SLA events follow it into archives
of their own: every collection the hot path reads by id stays the size of the working set.

Everything stays inside what FerretDB 1.24 supports: filters, sort, limit, and aggregation with `$match`,
`$unwind` and `$group` + `$sum`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from common.aggregates import find_with_archive, may_be_archived
from common.store import (
    GroupInserts,
    Recent,
    bulk_update,
    create_query_indexes,
    delete_by_ids,
    find_by,
    gather_all,
    insert_once,
    move_documents,
)
from services.notify.documents import Attempt, DeliveryStatus, NotificationRecord, SlaEventRecord
from services.notify.timers import DueTimer, Timer, bucket_of, past_horizon

APPLIED_KEPT = 500
# How long this process trusts the contacts and notifications it stored itself (`Recent`): a caller text's
# first attempt, moments after both were stored, reads neither back. Well below the least time after which
# another process takes over a delivery claim (60 s, `Outbox.deliver_many`), so a stale record's attempt is
# refused by that claim. A contact changes only when forgotten (its case closed, no text on its way).
RECENT_S = 30.0
RECENT_SIZE = 2_000
DUPLICATE_KEY = 11000

View = Literal["open", "overdue", "at_risk", "unassigned", "returned", "arbitration", "all"]
GroupBy = Literal["department", "district"]
Origin = Literal["call", "proactive"]  # how a case came in: a call, or a discovery rule (P2.3)


def _scope(district: str | None, origin: Origin | None) -> dict[str, Any]:
    """The cases a rate or report counts: a district's (None: all), and calls or proactive cases only
    when asked (cases stored before origins were kept are calls)."""
    scope: dict[str, Any] = {"district": district} if district else {}
    if origin == "proactive":
        scope["origin"] = "proactive"
    elif origin == "call":
        scope["origin"] = {"$ne": "proactive"}
    return scope


CaseOrder = Literal["lateness", "recent"]
# What a row of a view needs: the case document without its history and bookkeeping.
ROW_PROJECTION = {
    "state.decisions": 0,
    "applied": 0,
    "scheduled": 0,
    "cancelled": 0,
    "outbox": 0,
    "outbox_packed": 0,
}


def merged_rows(
    working: list[dict[str, Any]], archived: list[dict[str, Any]], sort: CaseOrder, limit: int
) -> list[dict[str, Any]]:
    """The first `limit` rows of both collections, each already sorted and limited, in the order the store
    sorts them: by `next_due_at` ascending, as MongoDB and FerretDB order it (no deadline first; the view
    puts those last afterwards, `views.list_cases`), then `_id`; or the most recently changed first. So a
    view gives the same rows whether a case is archived or not. A case in both (back from the archive, its
    copy there not yet deleted) is the working set's."""
    live = {d["_id"] for d in working}
    docs = [*working, *(d for d in archived if d["_id"] not in live)]
    earliest = datetime.min.replace(tzinfo=UTC)
    if sort == "lateness":
        docs.sort(key=lambda d: (d.get("next_due_at") is not None, d.get("next_due_at") or earliest, d["_id"]))
    else:
        docs.sort(key=lambda d: d.get("updated_at") or earliest, reverse=True)
    return docs[:limit]


# Counters only an open case sets (`domain.summary`): 0 in every archived case (none is open, `FINISHED`).
OPEN_ONLY = ("m_open", "m_res_pending", "dept_clocks.m_sign_pending")


def _open_only(field: str | int, *matches: dict[str, Any] | None) -> bool:
    """Whether a counter adds up only what open cases have (`OPEN_ONLY`): a sum of one of those fields, or
    a count of cases matched on one being 1. No archived case adds to it."""
    return (isinstance(field, str) and field.removeprefix("$") in OPEN_ONLY) or any(
        m is not None and any(m.get(name) == 1 for name in OPEN_ONLY) for m in matches
    )


def _ignore_duplicates(exc: BulkWriteError) -> set[int]:
    """The indexes refused as duplicates of a natural key; re-raise for any other write error."""
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return {e["index"] for e in errors}


def view_filter(
    view: View, now: datetime, *, hours: float, district: str | None, department: str | None, sla_class: str | None
) -> dict[str, Any]:
    """The cases a coordinator's view covers: open (or all), narrowed by lateness, stage and scope."""
    query: dict[str, Any] = {} if view == "all" else {"status": "open"}
    if view == "overdue":
        query["next_due_at"] = {"$lte": now}
    elif view == "at_risk":
        query["next_due_at"] = {"$gt": now, "$lte": now + timedelta(hours=hours)}
    elif view == "unassigned":
        query["lead_department"] = None
    elif view == "returned":
        # Every open case a department has returned (退单), wherever it went next: re-dispatched by the
        # router, or waiting for the coordinator's arbitration; a returned case rarely stays "returned".
        query["state.returns"] = {"$gt": 0}
    elif view == "arbitration":
        query["stage"] = "arbitration"
    if district:
        query["district"] = district
    if department:  # the department the case waits on (a co-handler once the lead resolved its part)
        query["responsible_department"] = department
    if sla_class:
        query["sla_class"] = sla_class
    return query


class TimerWheel:
    """Schedule, cancel and find due timers, one collection per time bucket (see `timers`); ids are
    natural, so scheduling twice is harmless."""

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
        return bucket_of(due_at, now, self.bucket_s)

    def collection(self, bucket: int) -> AsyncCollection[dict[str, Any]]:
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
        horizon = past_horizon(datetime.now(UTC), self.grace, self.bucket_s)

        async def into(bucket: int, group: list[Timer]) -> None:
            if bucket <= horizon:
                self._known.discard(bucket)  # possibly reaped by another process: register it again
            await self._ensure_bucket(bucket)
            docs = [{"_id": t.id, "due_at": t.due_at, "payload": t.payload} for t in group]
            try:
                await self.collection(bucket).insert_many(docs, ordered=False)
            except BulkWriteError as exc:
                _ignore_duplicates(exc)

        await gather_all(into(bucket, group) for bucket, group in by_bucket.items())

    async def insert_bulk(self, bucket: int, docs: list[dict[str, Any]]) -> None:
        """Load pre-built timer documents into one bucket (benchmarks and migrations)."""
        await self._ensure_bucket(bucket)
        await self.collection(bucket).insert_many(docs, ordered=False)

    async def cancel(self, refs: Iterable[tuple[str, int]]) -> None:
        by_bucket: dict[int, list[str]] = defaultdict(list)
        for timer_id, bucket in refs:
            by_bucket[bucket].append(timer_id)
        await gather_all(delete_by_ids(self.collection(bucket), ids) for bucket, ids in by_bucket.items())

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
        horizon = past_horizon(now, self.grace, self.bucket_s)
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


# A case leaves the working set once finished and left alone for the archive age (`Aggregates.archive_where`
# adds that, and keeps any case whose outbox is not yet published): resolved, closed or merged, with no
# deadline still unmet (a payment clock can outlive the resolution) and no timer placed. A caller text still
# being delivered reads the case by id, which finds it in the archive. A late event (a callback, a
# reopening, a grant approved) brings it back through the write path. Only the archiver runs this query
# (a scan on FerretDB, which pushes only the equalities down).
FINISHED: dict[str, Any] = {"status": {"$in": ["closed", "merged", "resolved"]}, "next_due_at": None, "scheduled": []}


class NotifyStore:
    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, bucket_s: int = 300, archive_after: timedelta | None = None
    ) -> None:
        self.db = db
        self.cases = db["cases"]
        # Finished cases (`FINISHED`), once unchanged for `archive_after`: still read by id, and counted by
        # every rate, report and view of all cases (each a sum or a merge over both collections).
        self.cases_archive = db["cases_archive"]
        self.archive_after = archive_after
        # Whether the archive can hold a case: the clockwork hands in its write path's
        # (`Aggregates.may_be_archived`), so reads by id and writes agree; a case numbered within the
        # archive age is looked up in the working set only.
        self.may_be_archived: Callable[[str], bool] = lambda case_id: may_be_archived(case_id, self.archive_after)
        self.case_claims = db["case_claims"]
        self.contacts = db["contacts"]
        self.notifications = db["notifications"]
        # What follows a case into its archive (`archive_followers`): its contact, its texts and alerts no
        # longer on their way, its SLA events. Each is read by the case's id, or a key starting with it,
        # on the hot path (FerretDB scans the collection for each), so none may grow with history.
        self.contacts_archive = db["contacts_archive"]
        self.notifications_archive = db["notifications_archive"]
        self.sla_events_archive = db["sla_events_archive"]
        # Who runs each delivery attempt: insert-only claims, so that of several notify processes reading
        # the same due attempt exactly one sends it (a claim older than the takeover time is taken over).
        self.delivery_claims = db["delivery_claims"]
        self._claim_inserts = GroupInserts(self.delivery_claims)  # a round's concurrent claims share a command
        self.recent_contacts: Recent[tuple[bool, str | None]] = Recent(RECENT_S, RECENT_SIZE)
        self.recent_notifications: Recent[NotificationRecord] = Recent(RECENT_S, RECENT_SIZE)
        self.sla_events = db["sla_events"]
        self.calendar_years = db["calendar_years"]  # working-day years an admin added (one each, insert-only)
        self.sla_timers = TimerWheel(db, "sla_timers", bucket_s=bucket_s)
        self.outbox_timers = TimerWheel(db, "outbox_timers", bucket_s=bucket_s)

    async def ensure_indexes(self) -> None:
        await create_query_indexes(
            self.db,
            [
                (self.cases, [("district", ASCENDING), ("next_due_at", ASCENDING)]),
                (self.cases, [("status", ASCENDING), ("next_due_at", ASCENDING)]),
                (self.cases, [("lead_department", ASCENDING), ("status", ASCENDING)]),
                (self.cases, [("responsible_department", ASCENDING), ("status", ASCENDING)]),
                (self.notifications, [("case_id", ASCENDING)]),
                (self.sla_events, [("case_id", ASCENDING)]),
                (self.notifications_archive, [("case_id", ASCENDING)]),
                (self.sla_events_archive, [("case_id", ASCENDING)]),
            ],
        )

    # ----------------------------------------------------------------------------- cases

    async def archive_followers(self, case_ids: list[str]) -> None:
        """Move what follows these archived cases into its archives (the write path's `archived` hook):
        copied first, so a failure in between leaves a document in both, which every read takes once. A
        text still on its way stays until it is delivered."""
        notes = [d for d in await find_by(self.notifications, "case_id", case_ids) if d.get("status") != "pending"]
        for live, archive, docs in (
            (self.contacts, self.contacts_archive, await find_by(self.contacts, "_id", case_ids)),
            (self.notifications, self.notifications_archive, notes),
            (self.sla_events, self.sla_events_archive, await find_by(self.sla_events, "case_id", case_ids)),
        ):
            await move_documents(live, archive, docs)

    async def _by_id(
        self, live: AsyncCollection[dict[str, Any]], archive: AsyncCollection[dict[str, Any]], key: str
    ) -> dict[str, Any] | None:
        """One document keyed by a case id (or a key starting with one), from the working set or, if the
        case may be archived, its archive."""
        return (await find_with_archive(live, archive, [key], self.may_be_archived)).get(key)

    async def case_statuses(self, case_ids: Sequence[str]) -> dict[str, str | None]:
        """The status of each of these cases notify knows, in one read (two with the archive)."""
        found = await find_with_archive(self.cases, self.cases_archive, case_ids, self.may_be_archived, {"status": 1})
        return {case_id: doc.get("status") for case_id, doc in found.items()}

    async def load(self, case_id: str) -> dict[str, Any] | None:
        """A case, from the working set or else (one old enough) from the archive."""
        return (await find_with_archive(self.cases, self.cases_archive, [case_id], self.may_be_archived)).get(case_id)

    def _with_archive(self, query: dict[str, Any]) -> bool:
        """Whether a query of cases can match archived ones: not one of open cases only."""
        return query.get("status") != "open"

    async def _aggregate(self, pipeline: list[dict[str, Any]], *, archive: bool = True) -> list[dict[str, Any]]:
        """A pipeline's groups over the working set and the archive, their sums `n` added per group (every
        counter is a sum). `archive` False: a counter no archived case adds to (`OPEN_ONLY`), of the working
        set alone (the archive grows with history)."""
        sums: dict[Any, dict[str, Any]] = {}
        for collection in (self.cases, self.cases_archive) if archive else (self.cases,):
            for doc in await (await collection.aggregate(pipeline)).to_list(None):
                key = repr(doc["_id"])
                if key in sums:
                    sums[key]["n"] += doc["n"]
                else:
                    sums[key] = doc
        return list(sums.values())

    async def find_cases(
        self,
        view: View,
        now: datetime,
        *,
        hours: float,
        district: str | None,
        department: str | None,
        sla_class: str | None,
        sort: CaseOrder,
        limit: int,
    ) -> list[dict[str, Any]]:
        """The case documents of a view (without their history), earliest unmet deadline first, or the
        most recently changed first."""
        query = view_filter(view, now, hours=hours, district=district, department=department, sla_class=sla_class)
        order = [("next_due_at", ASCENDING), ("_id", ASCENDING)] if sort == "lateness" else [("updated_at", DESCENDING)]
        docs = await self.cases.find(query, ROW_PROJECTION).sort(order).limit(limit).to_list(None)
        if not self._with_archive(query):
            return docs
        older = await self.cases_archive.find(query, ROW_PROJECTION).sort(order).limit(limit).to_list(None)
        return merged_rows(docs, older, sort, limit)

    async def count_cases(
        self,
        view: View,
        now: datetime,
        *,
        hours: float,
        district: str | None,
        department: str | None,
        sla_class: str | None,
    ) -> int:
        """How many cases a view holds (the same filter as `find_cases`)."""
        query = view_filter(view, now, hours=hours, district=district, department=department, sla_class=sla_class)
        total = await self.cases.count_documents(query)
        if self._with_archive(query):
            total += await self.cases_archive.count_documents(query)
        return total

    async def _sum_by(
        self,
        match: dict[str, Any],
        key: str,
        field: str | int,
        *,
        unwind: str | None = None,
        then: dict[str, Any] | None = None,
    ) -> dict[Any, int]:
        """One `$sum` per pipeline: FerretDB 1.24 computes only the first accumulator of a `$group` (the
        others come back 0), so every counter gets its own pipeline; over both collections, unless it counts
        open cases only (`OPEN_ONLY`)."""
        pipeline: list[dict[str, Any]] = [{"$match": match}]
        if unwind:
            pipeline.append({"$unwind": unwind})
        if then:
            pipeline.append({"$match": then})
        pipeline.append({"$group": {"_id": key, "n": {"$sum": field}}})
        archive = not _open_only(field, match, then)
        return {doc["_id"]: doc["n"] for doc in await self._aggregate(pipeline, archive=archive)}

    async def rate_counts(
        self, now: datetime, *, by: GroupBy, district: str | None, origin: Origin | None = None
    ) -> dict[str, dict[Any, int]]:
        """Each rate counter of the cases in scope, summed per department or district (counter -> name ->
        sum). Targets still open whose deadline has passed count as decided at query time."""
        scope = _scope(district, origin)
        key = "$lead_department" if by == "department" else "$district"
        dept_key = "$dept_clocks.department" if by == "department" else "$dept_clocks.district"
        sign_overdue = {"dept_clocks.m_sign_pending": 1, "dept_clocks.sign_due": {"$lte": now}}
        return {
            "res_on_time": await self._sum_by(scope, key, "$m_res_on_time"),
            "res_decided": await self._sum_by(scope, key, "$m_res_decided"),
            "res_overdue": await self._sum_by({**scope, "m_res_pending": 1, "due_at": {"$lte": now}}, key, 1),
            "callbacks": await self._sum_by(scope, key, "$m_cb"),
            "satisfied": await self._sum_by(scope, key, "$m_sat"),
            "backlog": await self._sum_by(scope, key, "$m_open"),
            "sign_on_time": await self._sum_by(scope, dept_key, "$dept_clocks.m_sign_on_time", unwind="$dept_clocks"),
            "sign_decided": await self._sum_by(scope, dept_key, "$dept_clocks.m_sign_decided", unwind="$dept_clocks"),
            "sign_overdue": await self._sum_by(scope, dept_key, 1, unwind="$dept_clocks", then=sign_overdue),
            "assignments": await self._sum_by(scope, dept_key, 1, unwind="$dept_clocks"),
        }

    # -------------------------------------------------------------------------- contacts

    async def remember_callers(self, phones: dict[str, str], consents: dict[str, bool] | None = None) -> None:
        """Whether each caller agreed to texts (P6.2) and, only if they did, their phone, kept only to text
        them about their case; dropped when it closes. A caller who did not consent (or whose consent is
        not given) is stored without a phone. One insert for a batch; a case already known keeps its first
        contact."""
        if not phones:
            return
        now = datetime.now(UTC)
        agreed = consents or {}
        contacts = {
            case_id: (True, phone) if agreed.get(case_id) else (False, None) for case_id, phone in phones.items()
        }
        docs = [
            {"_id": case_id, "consents_to_texts": consents, "stored_at": now} | ({"phone": phone} if phone else {})
            for case_id, (consents, phone) in contacts.items()
        ]
        refused: set[int] = set()
        try:
            await self.contacts.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            refused = _ignore_duplicates(exc)
        for i, (case_id, contact) in enumerate(contacts.items()):
            if i not in refused:  # a refused one keeps the contact stored first, which may differ
                self.recent_contacts.put(case_id, contact)

    async def remember_caller(self, case_id: str, phone: str, *, consents: bool = False) -> None:
        await self.remember_callers({case_id: phone}, {case_id: consents})

    async def caller_phone(self, case_id: str) -> str | None:
        doc = await self._by_id(self.contacts, self.contacts_archive, case_id)
        return doc.get("phone") if doc else None

    async def caller_contact(self, case_id: str) -> tuple[bool, str | None] | None:
        """Whether the caller agreed to texts, and their phone (kept only if they did); None while notify
        has not seen the call. A contact stored before consent was recorded counts as no consent."""
        return (await self.caller_contacts([case_id])).get(case_id)

    async def caller_contacts(self, case_ids: Sequence[str]) -> dict[str, tuple[bool, str | None]]:
        """`caller_contact` of many cases in one read (two with the archive); a case not seen yet is absent."""
        known = self.recent_contacts.many(case_ids)
        wanted = [case_id for case_id in case_ids if case_id not in known]
        found = await find_with_archive(self.contacts, self.contacts_archive, wanted, self.may_be_archived)
        return known | {
            case_id: (bool(doc.get("consents_to_texts")), doc.get("phone")) for case_id, doc in found.items()
        }

    async def forget_callers_texted(self, case_ids: list[str]) -> None:
        """Forget the callers of these cases, except those a text is still on its way to (a phone is kept only
        while it is needed)."""
        if not case_ids:
            return
        found = await find_by(
            self.notifications, "case_id", case_ids, {"case_id": 1}, where={"recipient": "caller", "status": "pending"}
        )
        waiting = {doc["case_id"] for doc in found}
        await self.forget_callers([case_id for case_id in case_ids if case_id not in waiting])

    async def forget_callers(self, case_ids: list[str]) -> None:
        self.recent_contacts.drop(*case_ids)
        if case_ids:
            await delete_by_ids(self.contacts, case_ids)
            if older := [case_id for case_id in case_ids if self.may_be_archived(case_id)]:
                await delete_by_ids(self.contacts_archive, older)

    # --------------------------------------------------------------------- notifications

    async def add_notification(self, record: NotificationRecord) -> bool:
        """Insert a notification under its natural key (`_id`); False if it already exists."""
        return await insert_once(self.notifications, record.document())

    async def add_notifications(self, records: list[NotificationRecord]) -> set[str]:
        """Insert notifications under their natural keys in one insert; the keys that were new."""
        if not records:
            return set()
        refused: set[int] = set()
        try:
            await self.notifications.insert_many([r.document() for r in records], ordered=False)
        except BulkWriteError as exc:
            refused = _ignore_duplicates(exc)
        created = [r for i, r in enumerate(records) if i not in refused]
        for record in created:
            self.recent_notifications.put(record.key, record)
        return {r.key for r in created}

    async def claim_delivery(self, key: str, attempt: int, now: datetime, takeover_s: float) -> bool:
        """Claim attempt `attempt` of notification `key` for this process; False while another process
        holds it. A claim is a unique-index insert (the one atomic write on every store); one older than
        `takeover_s` (its process died or hung) is taken over by claiming the next generation."""
        for generation in range(100):
            claim = {"_id": f"{key}|{attempt}|{generation}", "at": now}
            try:
                await self._claim_inserts.insert(claim)
                return True
            except DuplicateKeyError:
                pass
            held = await self.delivery_claims.find_one({"_id": claim["_id"]})
            if held is not None and held["at"] > now - timedelta(seconds=takeover_s):
                return False
        return False

    async def notification(self, key: str) -> NotificationRecord | None:
        return (await self.notifications_by_key([key])).get(key)

    async def notifications_by_key(self, keys: Sequence[str]) -> dict[str, NotificationRecord]:
        """Notifications by natural key, in one read (two with the archive)."""
        found = await find_with_archive(self.notifications, self.notifications_archive, keys, self.may_be_archived)
        return {key: NotificationRecord.model_validate(doc) for key, doc in found.items()}

    async def record_attempt(self, key: str, attempt: Attempt, status: DeliveryStatus) -> None:
        await self.record_attempts([(key, attempt, status)])

    async def record_attempts(self, attempts: Sequence[tuple[str, Attempt, DeliveryStatus]]) -> None:
        """Add an attempt to each notification and set its status: one statement each, sent together."""
        ops = []
        self.recent_notifications.drop(*(key for key, _, _ in attempts))  # read back from the store next time
        for key, attempt, status in attempts:
            update: dict[str, Any] = {"$push": {"attempts": attempt.model_dump()}, "$set": {"status": status}}
            if status == "sent":
                update["$set"]["sent_at"] = attempt.at
            ops.append(UpdateOne({"_id": key}, update))
        if ops:
            await bulk_update(self.notifications, ops)

    async def list_notifications(
        self,
        *,
        case_id: str | None = None,
        status: DeliveryStatus | None = None,
        recipient: str | None = None,
        limit: int = 200,
    ) -> list[NotificationRecord]:
        """Delivery records, oldest first: of one case, in one status, to one recipient (each if given)."""
        query = {
            name: value
            for name, value in (("case_id", case_id), ("status", status), ("recipient", recipient))
            if value is not None
        }
        # only delivered or given-up ones are archived
        archived = status != "pending" and (case_id is None or self.may_be_archived(case_id))
        found = await _merged(
            self.notifications, self.notifications_archive if archived else None, query, "created_at", limit
        )
        return [NotificationRecord.model_validate(doc) for doc in found]

    # ------------------------------------------------------------------------ SLA events

    async def record_sla_event(self, record: SlaEventRecord) -> bool:
        return await insert_once(self.sla_events, record.document())

    async def sla_events_by_id(self, event_ids: list[str]) -> dict[str, SlaEventRecord]:
        """The SLA events notify fired, by event id (one read for a batch)."""
        # An event id tells nothing of its case's day: one not in the working set is looked for in the archive.
        found = await find_with_archive(self.sla_events, self.sla_events_archive, event_ids, lambda _id: True)
        records = [SlaEventRecord.model_validate(doc) for doc in found.values()]
        return {r.event_id: r for r in records}

    async def sla_events_of(self, case_id: str) -> list[SlaEventRecord]:
        archive = self.sla_events_archive if self.may_be_archived(case_id) else None
        found = await _merged(self.sla_events, archive, {"case_id": case_id}, "fired_at", 200)
        return [SlaEventRecord.model_validate(doc) for doc in found]

    # ------------------------------------------------------------------- working-day calendar

    async def stored_calendar_years(self) -> list[dict[str, Any]]:
        """The years an admin added to the working-day calendar (`{_id: year, csv, added_by, added_at}`)."""
        return await self.calendar_years.find({}).sort("_id", ASCENDING).to_list(None)

    async def add_calendar_year(self, year: int, csv_text: str, *, added_by: str, added_at: datetime) -> bool:
        """Keep a year's schedule as it was posted; False when that year is stored already."""
        doc = {"_id": year, "csv": csv_text, "added_by": added_by, "added_at": added_at}
        return await insert_once(self.calendar_years, doc)

    # ------------------------------------------------------------------------ reports

    async def report_counts(
        self,
        first: str,
        last: str,
        now: datetime,
        *,
        group: GroupBy,
        district: str | None,
        origin: Origin | None = None,
    ) -> dict[str, dict[tuple[str, Any], int]]:
        """Each report counter summed per local day and group (counter -> (day, name) -> sum), over the
        days `first`..`last` (YYYY-MM-DD, Chongqing time). A fact counts on its day: received, dispatched
        and resolved on theirs; a sign-for or a resolution on the day it was decided (met on time, or
        its deadline), still-open targets only once that deadline has passed; a callback on its day."""
        scope = _scope(district, origin)
        days = {"$gte": first, "$lte": last}
        dept = group == "department"

        async def summed(
            day: str, key: str, value: str | int, match: dict[str, Any], unwind: str | None = None
        ) -> dict[tuple[str, Any], int]:
            pipeline: list[dict[str, Any]] = [{"$match": scope}]
            if unwind:
                pipeline.append({"$unwind": unwind})
            pipeline.append({"$match": {day: days, **match}})
            pipeline.append({"$group": {"_id": {"d": f"${day}", "g": key}, "n": {"$sum": value}}})
            docs = await self._aggregate(pipeline, archive=not _open_only(value, match))
            return {(doc["_id"]["d"], doc["_id"].get("g")): doc["n"] for doc in docs}

        first_dept = "$r_first_department" if dept else "$district"
        lead = "$r_lead" if dept else "$district"
        clock_key = "$dept_clocks.department" if dept else "$dept_clocks.district"
        return {
            "received": await summed("r_received_on", first_dept, 1, {}),
            "dispatched": await summed("r_dispatched_on", first_dept, 1, {}),
            "resolved": await summed("r_resolved_on", lead, 1, {}),
            "res_on_time": await summed("r_res_decided_on", lead, "$m_res_on_time", {}),
            "res_decided": await summed("r_res_decided_on", lead, "$m_res_decided", {}),
            "res_overdue": await summed("r_res_decided_on", lead, 1, {"m_res_pending": 1, "due_at": {"$lte": now}}),
            "callbacks": await summed("r_callback_on", lead, "$m_cb", {}),
            "satisfied": await summed("r_callback_on", lead, "$m_sat", {}),
            "sign_on_time": await summed(
                "dept_clocks.sign_decided_on", clock_key, "$dept_clocks.m_sign_on_time", {}, "$dept_clocks"
            ),
            "sign_decided": await summed(
                "dept_clocks.sign_decided_on", clock_key, "$dept_clocks.m_sign_decided", {}, "$dept_clocks"
            ),
            "sign_overdue": await summed(
                "dept_clocks.sign_decided_on",
                clock_key,
                1,
                {"dept_clocks.m_sign_pending": 1, "dept_clocks.sign_due": {"$lte": now}},
                "$dept_clocks",
            ),
        }


async def _merged(
    live: AsyncCollection[dict[str, Any]],
    archive: AsyncCollection[dict[str, Any]] | None,
    query: dict[str, Any],
    order: str,
    limit: int,
) -> list[dict[str, Any]]:
    """The first `limit` documents matching, by `order` (then id), of the working set and the archive
    (None: the working set only); a document in both counts once, as its working copy."""
    found: dict[str, dict[str, Any]] = {}
    for collection in (archive, live):
        if collection is not None:
            for doc in await collection.find(query).sort(order, ASCENDING).limit(limit).to_list(None):
                found[doc["_id"]] = doc
    return sorted(found.values(), key=lambda doc: (doc[order], doc["_id"]))[:limit]
