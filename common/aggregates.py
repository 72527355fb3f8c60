"""The one write path for every document that more than one consumer or request changes (STYLE 11).

    cases = Aggregates(db["cases"], db["case_claims"], Codec(Case.from_document, Case.to_document), publish)
    written = await cases.change(case_id, lambda case: desk.sign_for(case, worker, now))

A change is a pure function of the current aggregate (None when there is none) returning the aggregate to
store, or None for "nothing to change". The write path around it, per batch of documents:

1. one read of the working set (and of the archive, for ids not found there): one `$in` on MongoDB, one
   equality query per id on FerretDB (`common.store.find_by`: it decodes the whole collection for `$in`);
2. every change applied in memory;
3. the next version of every changed document claimed in one insert (`common.store.VersionClaims`: on
   FerretDB only a unique-index insert is atomic), then one bulk write of the documents, each carrying the
   entries of its outbox (events to publish, effects to run) in the same write;
4. `publish` called once with every document's pending outbox; then each outbox is recorded as published
   (`<collection>_published_claims`, `<id>@<version>`): on FerretDB an update costs fifty inserts, so the
   outbox is not cleared by writing the document again. The records go off the batch's path, by group
   commit (`common.store.GroupInserts`: the records of the batches that end while one insert is on its
   way go together in the next), since nothing this process does waits for them: it remembers what it
   published. The next change of a document drops entries recorded as published; entries whose publish
   failed are carried forward and published first, and `sweep` publishes what was left longer than a
   grace period. A record not yet stored when another process reads the document, or lost with its
   process, only means that outbox is published again (`publish` is idempotent).

Writers of one document inside one process are serialised in memory (lock stripes taken in one order),
so the coroutines of a process never contend through the store; a lost claim means another process got
there first, and that document alone is read and changed again. `publish` must be idempotent (consumers
dedupe on event id) and must not change documents of the same `Aggregates` (the stripes are held).

Round trips a batch of n documents waits for: a read, a claim insert, a bulk write (updates in commands
of at most `common.store.UPDATES_PER_COMMAND`), the publish: four, whatever n is, plus one per lost race
and one lookup of markers when documents come from another process; the markers' insert follows.

This process remembers the documents it wrote (or was handed, `remember`) for `cache_ttl`, at most
`cache_size` of them, and a change of one of those skips the read: on FerretDB every read scans the
collection. A remembered document is only a guess at the stored one; the version claim checks it, as it
checks a read (another process that wrote since took the claim, and the document is read again). The
time limit stays far below the claims' retention, so the claim that would show a stale guess is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import zlib
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import bson
import structlog
from bson.binary import Binary, UuidRepresentation
from bson.codec_options import CodecOptions
from bson.errors import InvalidDocument
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from common.store import (
    GroupInserts,
    VersionClaims,
    bulk_update,
    create_query_indexes,
    delete_by_ids,
    find_by,
    insert_once,
    insert_or_replace,
)
from contracts.events import BUSINESS_TZ, case_number_day

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

log = structlog.get_logger("aggregates")

A = TypeVar("A")
Doc = dict[str, Any]
Entry = dict[str, Any]  # one outbox entry, as stored (JSON-like)
Change = Callable[[A | None], A | None]
Publish = Callable[[Sequence[tuple[str, list[Entry]]]], Awaitable[None]]
DUPLICATE_KEY = 11000
LOCK_STRIPES = 256
CACHE_SIZE = 5_000  # documents this process remembers having written (module docstring)
CACHE_TTL_S = 120.0
REMEMBERED = 100_000  # outboxes this process published, remembered so it need not look them up
SWEEP_CHECKPOINTS = "outbox_sweeps"  # `sweep`'s checkpoint per collection of a database
CHECKPOINT_EVERY = timedelta(minutes=1)
FINISHED = "finished"  # the day of a write that left the document finished (its filter), else None (`archive_finished`)
ARCHIVE_BATCH = 500  # documents one archiving query reads at most
ARCHIVED_FROM = "archived-from"  # per collection: the first day whose finished documents may not all be archived
PACKED = "outbox_packed"  # where a packing write path keeps a document's outbox (`Aggregates(pack_outbox=True)`)
_PACKED_OPTIONS: CodecOptions[Doc] = CodecOptions(tz_aware=True, uuid_representation=UuidRepresentation.STANDARD)


class ConcurrentChange(ConnectionError):
    """A document kept changing under concurrent writers; transient, so a consumer retries the message."""


@dataclass(frozen=True)
class Codec(Generic[A]):
    """How an aggregate is stored: `dump` gives its document (`_id` and `outbox` included: the entries not
    yet published, which a change appends to and never drops), `load` reads it back. A write sets the
    fields `dump` gives and leaves others alone (e.g. a creation record written once), so `dump` gives
    every field it owns every time (None rather than left out)."""

    load: Callable[[Doc], A]
    dump: Callable[[A], Doc]


@dataclass(frozen=True)
class Written(Generic[A]):
    """A document as this write path left it."""

    id: str
    value: A
    version: int
    created: bool


@dataclass
class Outcome(Generic[A]):
    """What a batch did: the documents written, the ids whose change raised (with the error), and the ids
    left as they were."""

    written: dict[str, Written[A]] = field(default_factory=dict)
    failed: dict[str, Exception] = field(default_factory=dict)
    unchanged: set[str] = field(default_factory=set)


@dataclass
class _Plan(Generic[A]):
    id: str
    value: A
    doc: Doc
    version: int
    insert: bool  # not in the working set (new, or coming back from the archive)
    stored: Doc  # the whole document as it will be stored (the fields written over those left alone)
    restored: bool = False  # coming back from the archive


class Aggregates(Generic[A]):
    """Documents of one collection, changed only through `change` / `change_many` (module docstring)."""

    def __init__(
        self,
        collection: AsyncCollection[Doc],
        claims: AsyncCollection[Doc],
        codec: Codec[A],
        publish: Publish | None = None,
        *,
        archive: AsyncCollection[Doc] | None = None,
        archive_after: timedelta | None = None,
        finished: Mapping[str, Any] | None = None,
        archived: Callable[[list[str]], Awaitable[None]] | None = None,
        attempts: int = 20,
        cache_size: int = CACHE_SIZE,
        cache_ttl_s: float = CACHE_TTL_S,
        pack_outbox: bool = False,
    ) -> None:
        self.collection = collection
        # The outbox stored as one compressed value (`PACKED`; `outbox` stays an empty list), for documents
        # whose outbox is large: FerretDB decodes every document of the collection for each lookup and
        # update, so its cost follows the collection's bytes (1,500 documents: 1.2 ms a lookup at 500 B
        # each, 26 ms at 8 KB). The write path packs and unpacks it; other readers see no entries.
        self.pack_outbox = pack_outbox
        self.archive = archive
        self.archive_after = archive_after
        self.finished = dict(finished) if finished is not None else None  # what `archive_finished` moves
        if self.finished is not None:
            matches(self.finished, {})  # an operator the write path cannot decide fails here, not at a write
        self._finished_indexed = False
        self.archived = archived  # told the ids of the documents each archiving moved (what follows them)
        self.claims = VersionClaims(claims, collection)
        self.published = collection.database[f"{collection.name}_published_claims"]
        self._markers = GroupInserts(self.published)  # the records of published outboxes (module docstring)
        self._marking: set[asyncio.Future[None]] = set()  # their inserts on their way
        self._published: dict[str, int] = {}  # id -> version whose outbox this process published
        # id -> version whose outbox this process wrote, or its sweep found, and has not published yet
        # (`backlog`): known without asking the store, which would decode the whole collection to count.
        self._unpublished: dict[str, int] = {}
        self._writing: Counter[str] = Counter()  # ids a change of this process is writing and publishing now
        self._swept_until: datetime | None = None
        # Where the sweeps of this collection got to, shared by its processes (`sweep`): one document each.
        self.checkpoints = collection.database[SWEEP_CHECKPOINTS]
        self._checkpointed: datetime | None = None
        self._checkpoint_made = False
        self._sweep_indexed = False
        self.codec = codec
        self.publish = publish
        self.attempts = attempts
        self._stripes = tuple(asyncio.Lock() for _ in range(LOCK_STRIPES))
        self.cache_size = cache_size
        self.cache_ttl_s = cache_ttl_s
        # id -> (when, the document as stored: BSON, compressed). A decoded document weighs several times its
        # BSON (a notify case: 31 KB against 13 KB, 3 KB compressed), and a copy costs more than the decoding.
        self._cache: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self.cache_hits = 0

    # ------------------------------------------------------------------ what this process wrote

    def remember(self, doc: Doc) -> None:
        """The document as this process just stored it (written here, or inserted whole elsewhere, e.g. a
        creation record): its next change need not read it back."""
        if self.cache_size <= 0:
            return
        try:
            kept = _pack(doc)
        except (InvalidDocument, TypeError, OverflowError) as exc:  # not as the store would keep it: read it next time
            self._cache.pop(doc["_id"], None)
            log.debug("document not remembered", collection=self.collection.name, error=repr(exc))
            return
        self._cache[doc["_id"]] = (time.monotonic(), kept)
        self._cache.move_to_end(doc["_id"])
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)

    def forget(self, *doc_ids: str) -> None:
        for doc_id in doc_ids:
            self._cache.pop(doc_id, None)

    def _fresh(self, doc_id: str) -> bytes | None:
        """The remembered document (as kept), if it is younger than the time limit; an older one is
        forgotten."""
        item = self._cache.get(doc_id)
        if item is None:
            return None
        if time.monotonic() - item[0] > self.cache_ttl_s:
            del self._cache[doc_id]
            return None
        return item[1]

    def may_be_archived(self, doc_id: str) -> bool:
        """Whether the archive can hold this document. Only a document left unchanged for `archive_after`
        is archived (`archive_where`), so one keyed by a case received more recently than that (its case
        number says the day, `case_number_day`; a day of slack for clocks) is in the working set or
        nowhere, and is never looked for in the archive, which holds the whole history."""
        return self.archive is not None and may_be_archived(doc_id, self.archive_after)

    def _unread(self, new: Collection[str]) -> set[str]:
        """Of the ids believed new, those not to read: not those the archive may hold (a document there
        would be created twice), nor those this process remembers (a redelivery it wrote itself)."""
        return {doc_id for doc_id in new if not self.may_be_archived(doc_id) and self._fresh(doc_id) is None}

    def remembered(self, ids: Iterable[str]) -> dict[str, Doc]:
        """Copies of the documents among `ids` this process remembers writing (within the time limit), as
        the store would give them back: a guess at the stored ones (another process may have written one
        since), for readers to whom that is harmless and a lookup each is not."""
        return {doc_id: doc for doc_id in ids if (doc := self._remembered(doc_id)) is not None}

    def _remembered(self, doc_id: str) -> Doc | None:
        """A copy of the remembered document, as the store would give it back."""
        kept = self._fresh(doc_id)
        return _unpack(kept) if kept is not None else None

    # ------------------------------------------------------------------ changing

    async def change(self, doc_id: str, change: Change[A]) -> Written[A] | None:
        """Apply one change; the document as written, or None if nothing changed. Errors the change raises
        (a domain rule refusing) come out here."""
        outcome = await self.change_many({doc_id: change})
        if doc_id in outcome.failed:
            raise outcome.failed[doc_id]
        return outcome.written.get(doc_id)

    async def change_many(
        self, changes: Mapping[str, Change[A]], *, remembered: bool = True, new: Collection[str] = ()
    ) -> Outcome[A]:
        """Apply a change to each of many documents in a bounded number of round trips (module docstring).
        With `remembered` False every document is read from the store, none taken from memory. Ids in
        `new` are believed not to exist yet (the event that creates them): they are not read, only
        inserted, and if one exists after all its insert is refused and it is read and changed alone. (Not
        with an archive: a document there would be created a second time, so they are read as usual.)"""
        outcome: Outcome[A] = Outcome()
        if not changes:
            return outcome
        async with self._holding(changes), self._in_flight(changes):
            unread = self._unread(new)
            docs = await self._read([doc_id for doc_id in changes if doc_id not in unread], remembered=remembered)
            await self._drop_published(docs)
            plans, pending = self._plan(changes, docs, outcome)
            lost = await self._write(plans)
            for plan in plans:
                if plan.id not in lost:
                    outcome.written[plan.id] = Written(plan.id, plan.value, plan.version, plan.insert)
            for doc_id in lost:  # another process changed it meanwhile: read it again, alone
                written = await self._change_alone(doc_id, changes[doc_id], outcome)
                if written is not None:
                    outcome.written[doc_id] = written
            await self._flush(pending | {w.id: (w.version, self._outbox_of(w)) for w in outcome.written.values()})
        return outcome

    async def current(self, ids: Sequence[str], *, new: Collection[str] = ()) -> dict[str, A]:
        """The documents as they stand (this process's memory first, then the store), for a caller that
        plans its changes on them; ids in `new` are not read (as in `change_many`). What is read from the
        store is remembered, so the change that follows need not read it again."""
        unread = self._unread(new)
        wanted = [doc_id for doc_id in ids if doc_id not in unread]
        docs = await self._read(wanted)
        for doc_id, (doc, archived) in docs.items():
            if not archived and doc_id not in self._cache:
                self.remember(doc)
        return {doc_id: self.codec.load(doc) for doc_id, (doc, _) in docs.items()}

    async def sweep(self, older_than: datetime, limit: int = 500) -> int:
        """Publish the outboxes a crash or an outage left behind: documents written since the last sweep
        (in the day before, on the first) and unchanged since `older_than`, whose outbox is not recorded
        as published. Returns how many documents had one.

        The writes are found by their version claims, which name the minute of a write that carries an
        outbox (`outbox_minute`): one equality query per minute of the window, on claims of a few dozen
        bytes. FerretDB pushes only equalities down to PostgreSQL (a range or `$in` makes it decode the
        whole collection), and it decodes every document a query returns, projection or not: looked up
        among the documents themselves, each sweep decoded every document written in its minutes (notify's
        cases, 7 KB each, 200 of them a query during a surge). Only the writes neither this process
        published nor a marker records are read, from the store."""
        claims = self.claims.claims
        if not self._sweep_indexed:  # the sweep's lookups by minute (FerretDB: an index lookup each)
            await create_query_indexes(claims.database, [(claims, [("outbox_minute", 1)])])
            self._sweep_indexed = True
        since = self._swept_until or await self._resumed(older_than)
        minutes = [
            _minute(since + timedelta(minutes=n)) for n in range(int((older_than - since).total_seconds() // 60) + 2)
        ]
        claimed = await find_by(claims, "outbox_minute", minutes, {"at": 1})
        found = sorted((c for c in claimed if since <= c["at"] < older_than), key=lambda c: c["at"])[:limit]
        full = len(found) == limit
        # A write this process is still publishing (a batch slower than the grace period, under load) is its
        # writer's: this sweep stops before it, and the next one looks again from there.
        busy = next((i for i, c in enumerate(found) if c["_id"].rpartition("@")[0] in self._writing), None)
        if busy is not None:
            found, full = found[:busy], True
        left: dict[str, int] = {}
        for claim in found:
            doc_id, _, version = claim["_id"].rpartition("@")
            if self._published.get(doc_id, -1) < int(version):
                left[doc_id] = max(left.get(doc_id, 0), int(version))
        had = 0
        if left:
            marked = await self._marked(left)
            self._settled({doc_id: left[doc_id] for doc_id in marked})
            if ids := [doc_id for doc_id in left if doc_id not in marked]:
                had, unpublished = await self._publish_left(ids)
                if unpublished:
                    return had  # still unpublished (the broker is away): the next sweep looks again
        # The next sweep starts where this one stopped (overlapping a little: a write can be stamped a
        # moment before it lands).
        if full and not found:
            return had  # the first write of the window is still being published
        self._swept_until = (found[-1]["at"] if full else older_than) - timedelta(seconds=5)
        if self._checkpointed is None or self._swept_until - self._checkpointed >= CHECKPOINT_EVERY:
            await self.checkpoints.update_one(
                {"_id": self.collection.name}, {"$set": {"until": self._swept_until}}, upsert=True
            )
            self._checkpointed = self._swept_until
        return had

    async def _resumed(self, older_than: datetime) -> datetime:
        """Where this process's first sweep starts: where the collection's sweeps got to (any process's:
        every write claimed before it was found published, or published then), as far back as a day, as
        long as claims and markers are kept. The first write of every process makes sure there is a
        checkpoint from before its first claim (`_write`), so with none there is no claim to look for.
        Without it, every process start swept a whole day, 1,442 lookups by minute for each collection."""
        day_before = older_than - timedelta(days=1)
        checkpoint = await self.checkpoints.find_one({"_id": self.collection.name})
        if checkpoint is None:
            return older_than - timedelta(seconds=5)
        until: datetime = checkpoint["until"]
        self._checkpointed = until
        return min(max(until, day_before), older_than)

    async def _publish_left(self, ids: list[str]) -> tuple[int, int]:
        """Publish the outboxes these documents hold, as stored (what this process remembers may be older
        than what another wrote); how many had one, and how many of those are still unpublished. A claim
        whose write never landed (a writer that died between the two) leaves its document without one."""
        async with self._holding(ids):
            docs = await self._read(ids, remembered=False)
            await self._drop_published(docs)
            waiting = {
                doc_id: (doc.get("version", 0), list(doc["outbox"]))
                for doc_id, (doc, archived) in docs.items()
                if doc.get("outbox") and not archived
            }
            await self._flush(waiting)
            await self.settle()  # a sweep is not on anyone's path: it returns with what it published recorded
        return len(waiting), sum(self._published.get(doc_id, -1) < v for doc_id, (v, _) in waiting.items())

    @contextlib.asynccontextmanager
    async def _in_flight(self, ids: Iterable[str]) -> Any:
        """Mark the ids as being written and published by this process (`sweep` leaves them to it)."""
        held = list(ids)
        self._writing.update(held)
        try:
            yield
        finally:
            self._writing.subtract(held)
            for doc_id in held:
                if self._writing[doc_id] <= 0:
                    del self._writing[doc_id]

    @contextlib.asynccontextmanager
    async def _holding(self, ids: Iterable[str]) -> Any:
        stripes = sorted({hash(doc_id) % LOCK_STRIPES for doc_id in ids})
        async with contextlib.AsyncExitStack() as held:
            for stripe in stripes:  # in one order everywhere, so two batches never wait on each other
                await held.enter_async_context(self._stripes[stripe])
            yield

    async def _read(self, ids: list[str], *, remembered: bool = True) -> dict[str, tuple[Doc, bool]]:
        """The stored documents by id, each with whether it came from the archive; those this process
        remembers writing are not read (unless `remembered` is False)."""
        found: dict[str, tuple[Doc, bool]] = {}
        if remembered:
            found = {doc_id: (doc, False) for doc_id, doc in self.remembered(ids).items()}
            self.cache_hits += len(found)
        unread = [doc_id for doc_id in ids if doc_id not in found]
        if unread:
            found |= {doc["_id"]: (_unpacked(doc), False) for doc in await find_by(self.collection, "_id", unread)}
        missing = [doc_id for doc_id in ids if doc_id not in found and self.may_be_archived(doc_id)]
        if missing and self.archive is not None:
            for doc in await find_by(self.archive, "_id", missing):
                doc.pop("archived_at", None)
                found[doc["_id"]] = (_unpacked(doc), True)
        return found

    async def _marked(self, versions: Mapping[str, int]) -> set[str]:
        """Which of these document versions have their outbox recorded as published."""
        keys = {f"{doc_id}@{version}": doc_id for doc_id, version in versions.items()}
        found = await find_by(self.published, "_id", list(keys), {"_id": 1})
        return {keys[doc["_id"]] for doc in found}

    async def _drop_published(self, docs: Mapping[str, tuple[Doc, bool]]) -> None:
        """Empty the outboxes already published, as read (this process's memory first, then the markers)."""
        unknown: dict[str, int] = {}
        for doc_id, (doc, _) in docs.items():
            if doc.get("outbox"):
                if self._published.get(doc_id, -1) >= doc.get("version", 0):
                    doc["outbox"] = []
                else:
                    unknown[doc_id] = doc.get("version", 0)
        if unknown:
            marked = await self._marked(unknown)
            for doc_id in marked:
                docs[doc_id][0]["outbox"] = []
            self._settled({doc_id: unknown[doc_id] for doc_id in marked})

    def _plan(
        self, changes: Mapping[str, Change[A]], docs: Mapping[str, tuple[Doc, bool]], outcome: Outcome[A]
    ) -> tuple[list[_Plan[A]], dict[str, tuple[int, list[Entry]]]]:
        plans: list[_Plan[A]] = []
        pending: dict[str, tuple[int, list[Entry]]] = {}  # unchanged documents whose outbox still waits
        for doc_id, change in changes.items():
            stored, archived = docs.get(doc_id, (None, False))
            try:
                new = change(self.codec.load(stored) if stored is not None else None)
            except Exception as exc:  # noqa: BLE001 - reported per document; the rest of the batch goes on
                outcome.failed[doc_id] = exc
                continue
            if new is None:
                outcome.unchanged.add(doc_id)
                if stored is not None and stored.get("outbox") and not archived:
                    pending[doc_id] = (stored.get("version", 0), list(stored["outbox"]))
                continue
            version = (stored.get("version", 0) if stored is not None else 0) + 1
            doc = self.codec.dump(new)
            if archived and stored is not None:  # back into the working set whole, not only the fields this write sets
                doc = {**stored, **doc}
            now = datetime.now(UTC)
            doc.update(
                _id=doc_id,
                version=version,
                updated_at=now,
                outbox_pending=bool(doc.get("outbox")),
                outbox_minute=_minute(now) if doc.get("outbox") else None,
            )
            # The value as stored: the fields this write sets over those it leaves (the version included).
            whole = {**(stored or {}), **doc}
            if self.finished is not None:  # decided here, so the archiver finds these by indexed equalities
                doc[FINISHED] = whole[FINISHED] = finished_day(now) if matches(self.finished, whole) else None
            value = self.codec.load(whole)
            plans.append(
                _Plan(doc_id, value, doc, version, insert=stored is None or archived, stored=whole, restored=archived)
            )
        return plans, pending

    async def _write(self, plans: Sequence[_Plan[A]]) -> set[str]:
        """Claim and write the planned documents; the ids another writer beat us to."""
        if not plans:
            return set()
        if not self._checkpoint_made:  # before this process's first claim (`_resumed`)
            await insert_once(
                self.checkpoints, {"_id": self.collection.name, "until": datetime.now(UTC) - CHECKPOINT_EVERY}
            )
            self._checkpoint_made = True
        won = await self.claims.claim_many(
            [(p.id, p.version) for p in plans],
            marks={p.id: {"outbox_minute": p.doc["outbox_minute"]} for p in plans if p.doc.get("outbox_minute")},
        )
        lost = {p.id for p in plans if p.id not in won}
        inserts = [p for p in plans if p.id in won and p.insert]
        replaces = [p for p in plans if p.id in won and not p.insert]
        if inserts:
            try:
                await self.collection.insert_many([self._as_stored(p.doc) for p in inserts], ordered=False)
            except BulkWriteError as exc:
                lost |= {inserts[i].id for i in _duplicates(exc)}  # created (or restored) by another writer
        if replaces:
            try:
                await bulk_update(
                    self.collection,
                    [UpdateOne({"_id": p.id}, {"$set": _without_id(self._as_stored(p.doc))}) for p in replaces],
                )
            except Exception:
                self.forget(*(p.id for p in replaces))  # some may be written, some not: read them next time
                raise
        for plan in plans:
            if plan.id not in lost:
                self.remember(plan.stored)
        if self.archive is not None and (back := [p.id for p in plans if p.restored and p.id not in lost]):
            # Back in the working set: the archive's copy goes, so that what sums or lists both collections
            # counts the document once (a crash just before leaves both; a lookup by id takes the working one).
            await delete_by_ids(self.archive, back)
        return lost

    async def _change_alone(self, doc_id: str, change: Change[A], outcome: Outcome[A]) -> Written[A] | None:
        self.forget(doc_id)  # what this process remembered was not what is stored
        for attempt in range(self.attempts):
            docs = await self._read([doc_id], remembered=False)
            await self._drop_published(docs)
            step: Outcome[A] = Outcome()
            plans, _ = self._plan({doc_id: change}, docs, step)
            if doc_id in step.failed:
                outcome.failed[doc_id] = step.failed[doc_id]
                return None
            if not plans:
                outcome.unchanged.add(doc_id)
                return None
            if not await self._write(plans):
                return Written(doc_id, plans[0].value, plans[0].version, plans[0].insert)
            await self.claims.claim(doc_id, plans[0].version)  # clears the claim of a writer that crashed
            await asyncio.sleep(0.002 * min(attempt + 1, 10))
        raise ConcurrentChange(f"{self.collection.name} {doc_id} kept changing under concurrent writers")

    # ------------------------------------------------------------------ the outbox

    def _as_stored(self, doc: Doc) -> Doc:
        """The document as written to the store: with `pack_outbox`, its outbox packed (`PACKED`)."""
        if not self.pack_outbox:
            return doc
        return {**doc, "outbox": [], PACKED: pack_entries(doc.get("outbox") or [])}

    def _outbox_of(self, written: Written[A]) -> list[Entry]:
        return list(self.codec.dump(written.value).get("outbox") or [])

    async def _flush(self, pending: Mapping[str, tuple[int, list[Entry]]]) -> None:
        """Publish the outboxes, then record them as published; a publish that fails leaves them for the
        next change or the sweep."""
        waiting = {doc_id: item for doc_id, item in pending.items() if item[1]}
        if not waiting or self.publish is None:
            return
        self._owe(waiting)
        try:
            await self.publish([(doc_id, entries) for doc_id, (_, entries) in waiting.items()])
        except Exception as exc:  # noqa: BLE001 - the entries stay in their documents: nothing is lost
            log.warning(
                "outbox publish failed; left for the sweep",
                collection=self.collection.name,
                documents=len(waiting),
                error=repr(exc),
            )
            return
        now = datetime.now(UTC)
        marking = asyncio.ensure_future(
            self._mark([{"_id": f"{doc_id}@{version}", "at": now} for doc_id, (version, _) in waiting.items()])
        )
        self._marking.add(marking)
        marking.add_done_callback(self._marking.discard)
        if len(self._published) > REMEMBERED:
            self._published.clear()
        self._published.update({doc_id: version for doc_id, (version, _) in waiting.items()})
        self._settled({doc_id: version for doc_id, (version, _) in waiting.items()})

    async def _mark(self, markers: list[Doc]) -> None:
        """Record published outboxes (group commit with other batches' records). One already recorded (a
        redelivery, a sweep) is fine; a failure is logged: those outboxes may be published once more."""
        results = await asyncio.gather(*(self._markers.insert(m) for m in markers), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException) and not isinstance(r, DuplicateKeyError)]
        if failed:
            log.warning(
                "published outboxes not recorded; they may be published again",
                collection=self.collection.name,
                documents=len(failed),
                error=repr(failed[0]),
            )

    async def settle(self) -> None:
        """Wait until the records of the outboxes published so far are stored (shutdown, tests)."""
        while self._marking:
            await asyncio.gather(*self._marking, return_exceptions=True)

    def _owe(self, waiting: Mapping[str, tuple[int, list[Entry]]]) -> None:
        """These outboxes are about to be published: owed until `_settled` (a failed publish leaves them)."""
        for doc_id, (version, _) in waiting.items():
            self._unpublished[doc_id] = max(version, self._unpublished.get(doc_id, 0))
        while len(self._unpublished) > REMEMBERED:  # only while the broker is away for very long
            self._unpublished.pop(next(iter(self._unpublished)))

    def _settled(self, versions: Mapping[str, int]) -> None:
        """These outboxes are published (here, or by another process as its markers show)."""
        for doc_id, version in versions.items():
            if self._unpublished.get(doc_id, version + 1) <= version:
                del self._unpublished[doc_id]

    @property
    def backlog(self) -> int:
        """Documents whose events this process knows still wait to be published: written here, or found by
        its sweep, with a publish that failed or is on its way (`/metrics`, the coordinators' delivery view).
        Each process counts its own; their sum is the service's."""
        return len(self._unpublished)

    # ------------------------------------------------------------------ the archive

    async def archive_finished(self) -> int:
        """Move the finished documents (the `finished` filter) unchanged for `archive_after` to the
        archive (`archive_where`), a batch at a time; what every service's archiver runs
        (`common.app.archiver`). Returns how many moved (the archiver asks again until none does).

        The write path stamps every document it writes with the day of that write if the filter matches
        it (`FINISHED`, else None), and the archiver asks for each day from the first that may still hold
        some (a checkpoint, `ARCHIVED_FROM`) to the archive age's: one indexed equality each, since
        FerretDB pushes only equalities down to PostgreSQL. The filter itself (a `$in` of statuses, a
        `$ne`) made FerretDB decode every open document, in every service at once, each round (19,000 open
        cases of a surge: 7.5 s for the hotline's intakes, 21 s for notify's cases, 18 s for relief's),
        and a plain finished flag every finished one not old enough yet (relief's cases are finished
        once assessed: 2.8 s for 17,000). A day is passed over once it holds nothing finished and the
        archive age is past it. Documents stored before the stamp existed are archived by the filter
        itself until none is left; the checkpoint, made then, says so to every process."""
        if self.archive is None or self.finished is None:
            return 0
        if not self._finished_indexed:
            await create_query_indexes(self.collection.database, [(self.collection, [(FINISHED, 1)])])
            self._finished_indexed = True
        mark = f"{ARCHIVED_FROM}:{self.collection.name}"
        checkpoint = await self.checkpoints.find_one({"_id": mark})
        if checkpoint is None:  # the first round of this version on this database, in any process
            # No stamp is older than this process (a day of slack for the clocks).
            first = finished_day(datetime.now(UTC) - timedelta(days=1))
            await insert_once(self.checkpoints, {"_id": mark, "day": first, "unstamped": True})
            checkpoint = await self.checkpoints.find_one({"_id": mark}) or {"day": first, "unstamped": True}
        if checkpoint.get("unstamped"):
            found, moved = await self._archive({**self.finished, FINISHED: {"$exists": False}})
            if moved:
                return moved
            if not found:  # none left: no process asks the filter again
                await self.checkpoints.update_one({"_id": mark}, {"$set": {"unstamped": False}})
        cutoff = datetime.now(BUSINESS_TZ) - (self.archive_after or timedelta(0))
        day, last = date.fromisoformat(checkpoint["day"]), cutoff.date()
        clear = day  # the first day that may still hold finished documents after this round
        moved = 0
        while day <= last:
            found, moved_now = await self._archive({FINISHED: day.isoformat()})
            moved += moved_now
            if clear == day and found == moved_now and found < ARCHIVE_BATCH and day < last:
                clear = day + timedelta(days=1)  # emptied, and nothing written that day can come now
            day += timedelta(days=1)
        if clear > date.fromisoformat(checkpoint["day"]):
            await self.checkpoints.update_one({"_id": mark}, {"$set": {"day": clear.isoformat()}})
        return moved

    async def archive_where(self, query: Doc, limit: int = ARCHIVE_BATCH) -> int:
        """Move documents matching `query` (finished ones) from the working set to the archive; returns how
        many. The working set is what FerretDB scans on every update and lookup, so it must not grow with
        history; an archived document is still read by id, and a change brings it back (`change_many`).

        With `archive_after` set, only documents the write path left unchanged that long are moved (what
        `may_be_archived` counts on). Each move claims the document's next version first, so no writer
        changes it meanwhile. A delete scans the collection on FerretDB: small once the backlog is
        archived."""
        return (await self._archive(query, limit))[1]

    async def _archive(self, query: Doc, limit: int = ARCHIVE_BATCH) -> tuple[int, int]:
        """`archive_where`: how many documents matched (at most `limit`), and how many moved."""
        if self.archive is None:
            raise ValueError(f"{self.collection.name} has no archive")
        if self.archive_after is not None:
            query = {**query, "updated_at": {"$lt": datetime.now(UTC) - self.archive_after}}
        docs = [_unpacked(doc) for doc in await self.collection.find(query).to_list(limit)]
        found = len(docs)
        unknown = {
            doc["_id"]: doc.get("version", 0)
            for doc in docs
            if doc.get("outbox") and self._published.get(doc["_id"], -1) < doc.get("version", 0)
        }
        unpublished = set(unknown) - await self._marked(unknown) if unknown else set()
        docs = [
            self._as_stored(doc | {"outbox": [], "outbox_pending": False, "outbox_minute": None})
            for doc in docs
            if doc["_id"] not in unpublished
        ]  # the sweep's first
        if not docs:
            return found, 0
        won = await self.claims.claim_many([(doc["_id"], doc.get("version", 0) + 1) for doc in docs])
        moved = [
            doc | {"version": doc.get("version", 0) + 1, "archived_at": datetime.now(UTC)}
            for doc in docs
            if doc["_id"] in won
        ]
        await insert_or_replace(self.archive, moved)  # archived before, then brought back: the new copy
        if moved:
            self.forget(*(doc["_id"] for doc in moved))
            await delete_by_ids(self.collection, [doc["_id"] for doc in moved])
            if self.archived is not None:
                await self.archived([doc["_id"] for doc in moved])
        return found, len(moved)


def finished_day(at: datetime) -> str:
    """The stamp of a document a write at `at` left finished (`FINISHED`): that business day."""
    return at.astimezone(BUSINESS_TZ).date().isoformat()


def matches(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """Whether `doc` matches `query`, as MongoDB would decide it, for the forms a `finished` filter uses:
    top-level fields, each equal to a value (None: null or missing; a list: that list), or `$in` / `$nin` a
    list, or `$ne` a value. Any other operator is a ValueError, whatever the document: the stamp must
    never guess."""
    result = True
    for name, wanted in query.items():
        if "." in name or name.startswith("$"):
            raise ValueError(f"a finished filter names top-level fields only, not {name}")
        value = doc.get(name)
        if not (isinstance(wanted, Mapping) and any(str(k).startswith("$") for k in wanted)):
            result = result and value == wanted
            continue
        for op, operand in wanted.items():
            if op == "$in":
                ok = value in list(operand)
            elif op == "$nin":
                ok = value not in list(operand)
            elif op == "$ne":
                ok = value != operand
            else:
                raise ValueError(f"a finished filter cannot use {op} ({name}): only equality, $in, $nin, $ne")
            result = result and ok
    return result


def may_be_archived(doc_id: str, archive_after: timedelta | None) -> bool:
    """Whether an archive filled by `Aggregates.archive_where` with this age (None: any) can hold the
    document: not one keyed by a case received more recently (`Aggregates.may_be_archived`)."""
    if archive_after is None:
        return True
    day = case_number_day(doc_id)
    if day is None:
        return True
    return day <= (datetime.now(BUSINESS_TZ) - archive_after).date() + timedelta(days=1)


async def find_with_archive(
    live: AsyncCollection[Doc],
    archive: AsyncCollection[Doc],
    ids: Sequence[str],
    may_hold: Callable[[str], bool],
    projection: Doc | None = None,
) -> dict[str, Doc]:
    """Documents by id for a reader: from the working set, then the ones not found there that the archive
    may hold (`may_hold`, an `Aggregates.may_be_archived`) from the archive; one batched read each."""
    found = {doc["_id"]: doc for doc in await find_by(live, "_id", list(ids), projection)} if ids else {}
    if older := [doc_id for doc_id in ids if doc_id not in found and may_hold(doc_id)]:
        found |= {doc["_id"]: doc for doc in await find_by(archive, "_id", older, projection)}
    return found


def _unpacked(doc: Doc) -> Doc:
    """A document as read, with a packed outbox (`PACKED`) back in `outbox` (one written unpacked, before
    its collection packed, keeps its own)."""
    if (packed := doc.pop(PACKED, None)) is not None:
        doc["outbox"] = unpack_entries(packed)
    return doc


def pack_entries(entries: Sequence[Doc]) -> Binary | None:
    """A list of documents as one compressed value (None for none), for a field that only its own code reads
    back: FerretDB decodes every field of every document it reads or updates, a nested list at some
    2 µs a value, a binary value at almost nothing (256 updates of 1 KB documents: 2.3 ms each with a
    2.2 KB list of events, 1.3 ms with the list packed; a lookup 1.0 against 0.6 ms)."""
    return Binary(_pack({"entries": list(entries)})) if entries else None


def unpack_entries(packed: bytes | None) -> list[Doc]:
    """`pack_entries`'s list back (empty for None)."""
    return list(_unpack(packed)["entries"]) if packed else []


def _pack(doc: Doc) -> bytes:
    """A document as compressed BSON (a packed outbox, a remembered document): what the store would keep."""
    return zlib.compress(bson.encode(doc, codec_options=_PACKED_OPTIONS), 1)


def _unpack(packed: bytes) -> Doc:
    """`_pack`'s document back, as the store would give it (times in UTC)."""
    return bson.decode(zlib.decompress(packed), codec_options=_PACKED_OPTIONS)


def _minute(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M")


def _without_id(doc: Doc) -> Doc:
    return {k: v for k, v in doc.items() if k != "_id"}


def _duplicates(exc: BulkWriteError) -> list[int]:
    """The indexes of the documents a bulk insert refused as duplicates; any other error is raised."""
    errors = exc.details.get("writeErrors", [])
    if any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return [e["index"] for e in errors]
