"""MongoDB access shared by every service: the client factory and idempotency helpers.

Stay within what both MongoDB and FerretDB 1.24 support: no multi-document transactions, no change
streams, no TTL or partial indexes; unique indexes, upserts and `find_one_and_update` are fine.
"""

from __future__ import annotations

import asyncio
import functools
import time
import weakref
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import structlog
from pymongo import AsyncMongoClient, DeleteOne
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, OperationFailure
from pymongo.monitoring import CommandFailedEvent, CommandListener, CommandStartedEvent, CommandSucceededEvent

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection
    from pymongo.asynchronous.database import AsyncDatabase

    from common.settings import ServiceSettings


T = TypeVar("T")
V = TypeVar("V")
log = structlog.get_logger("store")
_INDEXED_QUERIES: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()  # per client


# How the store says a write lost a race with a concurrent one and is to be tried again as it was: FerretDB
# passes on PostgreSQL's serialization failure and deadlock (two inserts of overlapping unique keys in
# opposite orders); MongoDB answers its write conflict with code 112.
_RETRY_AS_IS = ("SQLSTATE 40001", "SQLSTATE 40P01")
WRITE_CONFLICT = 112


def store_busy(exc: BaseException) -> bool:
    """The store refused an operation for a concurrent one (serialization failure, deadlock, write
    conflict): nothing was written, and the same operation may simply be tried again."""
    if not isinstance(exc, OperationFailure):
        return False
    return exc.code == WRITE_CONFLICT or any(sign in str(exc) for sign in _RETRY_AS_IS)


# How FerretDB says its PostgreSQL backend is unreachable or went away (an `OperationFailure`, code 1):
# refused, shutting down, starting up, or the connection cut in the middle of a query ("unexpected EOF",
# seen when PostgreSQL was killed under load). The store is down for the moment, as much as when the
# server itself does not answer.
_BACKEND_DOWN = (
    "failed to connect to",
    "SQLSTATE 57P01",
    "SQLSTATE 57P03",
    "SQLSTATE 08",
    "connection refused",
    "unexpected EOF",
    "conn closed",
    "broken pipe",
    "connection reset by peer",
)


def store_unavailable(exc: BaseException) -> bool:
    """The store cannot be reached right now (the server, or FerretDB's backend): a reason to try again
    later, not a fault of the request."""
    if isinstance(exc, ConnectionFailure):
        return True
    return isinstance(exc, OperationFailure) and any(sign in str(exc) for sign in _BACKEND_DOWN)


async def busy_retry(op: Callable[[], Awaitable[T]], attempts: int = 5) -> T:
    """Run a store operation, retrying it with backoff while the store refuses it for a concurrent one."""
    for attempt in range(1, attempts + 1):
        try:
            return await op()
        except OperationFailure as exc:
            if not store_busy(exc) or attempt == attempts:
                raise
            await asyncio.sleep(0.01 * 2**attempt)
    raise AssertionError("unreachable")


class CommandCounter(CommandListener):
    """Store round trips by command name (`insert`, `find`, `update`, ...), and the time they took by
    command and collection, for `/metrics`: on FerretDB the number of commands per case, and which
    collection they scan, more than their size, decide how fast a service goes."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.seconds: defaultdict[tuple[str, str], float] = defaultdict(float)  # (command, collection) -> seconds
        self.sent: Counter[tuple[str, str]] = Counter()  # (command, collection) -> commands
        self._started: dict[int, tuple[str, str]] = {}

    def started(self, event: CommandStartedEvent) -> None:
        self.counts[event.command_name] += 1
        target = event.command.get(event.command_name)
        key = (event.command_name, target if isinstance(target, str) else "")
        self.sent[key] += 1
        self._started[event.request_id] = key

    def by_command(
        self, since: Counter[tuple[str, str]] | None = None, *, without: Collection[str] = ()
    ) -> dict[str, int]:
        """Commands sent by name, since a copy of `sent` (or ever), leaving out those to the collections in
        `without` (tests and benchmarks counting one path's commands)."""
        spent: dict[str, int] = {}
        for (command, collection), n in (self.sent - (since or Counter())).items():
            if collection not in without:
                spent[command] = spent.get(command, 0) + n
        return spent

    def _ended(self, event: CommandSucceededEvent | CommandFailedEvent) -> None:
        if (started := self._started.pop(event.request_id, None)) is not None:
            self.seconds[started] += event.duration_micros / 1e6

    def succeeded(self, event: CommandSucceededEvent) -> None:
        self._ended(event)

    def failed(self, event: CommandFailedEvent) -> None:
        self._ended(event)


def open_mongo(settings: ServiceSettings, *, counter: CommandCounter | None = None) -> AsyncMongoClient[dict[str, Any]]:
    """A client for the service's store; it connects lazily, so a down store does not stop start-up.
    With a `counter`, every command the client sends is counted."""
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        maxPoolSize=settings.mongodb_max_pool_size,
        appname=settings.service_name,
        event_listeners=[counter] if counter is not None else [],
    )


async def serves_queries_from_indexes(db: AsyncDatabase[dict[str, Any]]) -> bool:
    """Whether the server answers every query shape from its indexes (MongoDB), not only equalities of one
    field at a time. FerretDB 1.24 pushes only equality filters down to PostgreSQL; a `$in`, a range, a
    sort or an empty filter makes it fetch and decode the whole collection. On the local stack those
    equalities are served by an index (deploy/local/ferretdb-indexes.sql gives FerretDB's indexes GIN twins
    its filters can use), so there a batch of lookups is many equality queries rather than one `$in`."""
    client = db.client
    if (known := _INDEXED_QUERIES.get(client)) is None:
        info = await client.admin.command("buildInfo")
        known = _INDEXED_QUERIES[client] = "ferretdbVersion" not in info
        if not known:
            log.info(
                "equality lookups only are served by indexes on this store",
                server=info.get("version"),
                ferretdb=info.get("ferretdbVersion"),
            )
    return known


LOOKUPS_IN_FLIGHT = 8  # per batch read


async def find_by(
    collection: AsyncCollection[dict[str, Any]],
    field: str,
    values: Sequence[Any],
    projection: dict[str, Any] | None = None,
    *,
    where: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """The documents whose `field` is one of `values` (and that match `where`, equalities only).

    On MongoDB that is one `$in` query. FerretDB 1.24 pushes only equality filters down to PostgreSQL:
    a `$in` makes it fetch and decode the whole collection (measured with 5,000 documents of 1 KB: 566 ms
    for `$in` of one id, 460 ms for a `delete_many` by `$in` of five ids), while an equality on `_id` or on
    a field with a query index (`create_query_indexes`) is an index lookup, about 1 ms a round trip whatever
    the collection's size (against 600 ms to decode 20,000 documents of 1 KB, or 2,700 of 7 KB). So there a
    batch is read with one equality query per value, `LOOKUPS_IN_FLIGHT` at a time: `field` must be `_id`
    or lead a query index. The bound is each read's own, not the process's: an operator's read of a few
    records (a caller's open cases) does not wait behind a consumer's batch of hundreds."""
    values = list(dict.fromkeys(values))
    if not values:
        return []
    if await serves_queries_from_indexes(collection.database):
        query = {**(where or {}), field: {"$in": values}}
        return await collection.find(query, projection).batch_size(len(values) + 1).to_list()
    turns = asyncio.Semaphore(LOOKUPS_IN_FLIGHT)

    async def one(value: Any) -> list[dict[str, Any]]:
        async with turns:
            return await collection.find({**(where or {}), field: value}, projection).to_list()

    return [doc for found in await asyncio.gather(*(one(v) for v in values)) for doc in found]


async def gather_all(work: Iterable[Awaitable[Any]]) -> None:
    """Run every awaitable at once; the first error is raised once all have ended, so none is left running
    (as `asyncio.gather` alone would leave the others)."""
    results = await asyncio.gather(*work, return_exceptions=True)
    if errors := [r for r in results if isinstance(r, BaseException)]:
        raise errors[0]


async def delete_by_ids(collection: AsyncCollection[dict[str, Any]], ids: Sequence[str]) -> None:
    """Delete documents by `_id`: one `$in` delete on MongoDB, one `DeleteOne` each on FerretDB (see
    `find_by`), sent as bulk commands."""
    ids = list(dict.fromkeys(ids))
    if not ids:
        return
    if await serves_queries_from_indexes(collection.database):
        await collection.delete_many({"_id": {"$in": ids}})
    else:
        await bulk_update(collection, [DeleteOne({"_id": i}) for i in ids])


async def create_query_indexes(
    db: AsyncDatabase[dict[str, Any]], indexes: Sequence[tuple[AsyncCollection[dict[str, Any]], Any]]
) -> bool:
    """Create the non-unique indexes that make queries fast, `(collection, keys)` each, as MongoDB would use
    them. Unique indexes guard correctness, not speed: create those with `create_index` always.

    FerretDB uses an index only for an equality on one field (`serves_queries_from_indexes`), so there each
    index's first field gets an index of its own (once per collection), unless it is descending: a
    descending first key serves a sort, never an equality. Any other index would only make writes dearer.
    Returns whether the indexes were created as given (MongoDB)."""
    if await serves_queries_from_indexes(db):
        for collection, keys in indexes:
            await collection.create_index(keys)
        return True
    made: set[tuple[str, str]] = set()
    for collection, keys in indexes:
        first, direction = (keys, 1) if isinstance(keys, str) else keys[0]
        if direction == 1 and (collection.name, first) not in made:
            made.add((collection.name, first))
            await collection.create_index([(first, 1)])
    return False


async def insert_once(collection: AsyncCollection[dict[str, Any]], document: dict[str, Any]) -> bool:
    """Insert a document whose `_id` (or unique key) is natural; False if it was already there."""
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        return False
    return True


async def insert_or_replace(collection: AsyncCollection[dict[str, Any]], documents: Sequence[dict[str, Any]]) -> None:
    """Insert the documents in one unordered write; one whose `_id` is there already is replaced by it (a
    document moved to an archive before, brought back, changed and moved again)."""
    if not documents:
        return
    try:
        await busy_retry(functools.partial(collection.insert_many, list(documents), ordered=False))
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != 11000 for e in errors):
            raise
        for e in errors:
            doc = documents[e["index"]]
            await busy_retry(functools.partial(collection.replace_one, {"_id": doc["_id"]}, doc))


async def move_documents(
    source: AsyncCollection[dict[str, Any]],
    target: AsyncCollection[dict[str, Any]],
    documents: Sequence[dict[str, Any]],
) -> None:
    """Move documents read from `source` to `target` (an archive, or back from one): copied first, then
    deleted, so a failure in between leaves a document in both, which readers take once."""
    if documents:
        await insert_or_replace(target, documents)
        await delete_by_ids(source, [doc["_id"] for doc in documents])


class GroupInserts:
    """Group commit of single-document inserts into one collection: concurrent `insert` calls share one
    `insert_many` (unordered). Nothing waits for a timer: when no insert is in flight the document goes
    at once; while one is, the documents arriving meanwhile go together in the next. Each caller gets its
    own outcome: a refused duplicate raises `DuplicateKeyError` to its own caller only, any other error
    to every caller of that command.

    On FerretDB a command's own cost dwarfs a document's (an insert_many of 100 documents costs little
    more than one insert), so under many concurrent calls this cuts the store's work, not only the round
    trips; alone, a call pays one insert as before."""

    def __init__(self, collection: AsyncCollection[dict[str, Any]], *, most: int = 500) -> None:
        self.collection = collection
        self.most = most
        self._waiting: list[tuple[dict[str, Any], asyncio.Future[None]]] = []
        self._flushing: asyncio.Task[None] | None = None
        self.commands = 0  # insert commands sent (tests, benchmarks)

    async def insert(self, document: dict[str, Any]) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((document, done))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        await asyncio.shield(done)  # a caller giving up does not cancel the others' command

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[: self.most], self._waiting[self.most :]
            self.commands += 1
            errors: dict[int, BaseException] = {}
            try:
                await self.collection.insert_many([doc for doc, _ in batch], ordered=False)
            except BulkWriteError as exc:
                for error in exc.details.get("writeErrors", []):
                    errors[error["index"]] = (
                        DuplicateKeyError(error.get("errmsg", "duplicate key"), 11000, error)
                        if error.get("code") == 11000
                        else OperationFailure(error.get("errmsg", "write error"), error.get("code"), error)
                    )
            except Exception as exc:  # noqa: BLE001 - every caller of this command gets it
                errors = dict.fromkeys(range(len(batch)), exc)
            for i, (_, done) in enumerate(batch):
                if not done.done():
                    if i in errors:
                        done.set_exception(errors[i])
                    else:
                        done.set_result(None)


class Recent(Generic[V]):
    """What this process stored moments ago, by `_id`, so that reading it back soon after costs no lookup
    (on FerretDB each is a round trip that decodes the document). Entries older than `ttl_s` are gone, and
    at most `size` are kept. Only a guess at what is stored: a caller uses it where a stale value is
    harmless, or checked by a claim that another writer would hold (and keeps `ttl_s` below the time
    after which such a claim is taken over)."""

    def __init__(self, ttl_s: float, size: int) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self._items: OrderedDict[str, tuple[float, V]] = OrderedDict()

    def put(self, key: str, value: V) -> None:
        self._items[key] = (time.monotonic(), value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def get(self, key: str) -> V | None:
        item = self._items.get(key)
        if item is None:
            return None
        if time.monotonic() - item[0] > self.ttl_s:
            del self._items[key]
            return None
        return item[1]

    def many(self, keys: Iterable[str]) -> dict[str, V]:
        """The fresh entries of these keys (those missing or too old left out)."""
        return {key: value for key in keys if (value := self.get(key)) is not None}

    def drop(self, *keys: str) -> None:
        for key in keys:
            self._items.pop(key, None)


CLAIMS_SUFFIX = "_claims"
UPDATES_PER_COMMAND = 16
UPDATE_COMMANDS_IN_FLIGHT = 3
_update_turns: dict[int, asyncio.Semaphore] = {}  # per event loop


def ferretdb_connections_needed(max_pool_size: int) -> int:
    """The most PostgreSQL connections one process can make FerretDB 1.24 hold at once. Each statement of
    an update command keeps the connection of its read until the command ends, and takes one more for its
    write: a command of n updates needs n + 1. Any other command needs at most two. With
    `UPDATE_COMMANDS_IN_FLIGHT` bulk commands and the rest of the process's `max_pool_size` connections
    busy with single commands, that is the sum below. FerretDB's pool must hold this for every process
    on the store, or a burst (every process catching up at once after an outage) can take the whole pool,
    each command waiting for one more connection, and the store stops answering for good."""
    bulk = min(UPDATE_COMMANDS_IN_FLIGHT, max_pool_size)
    return bulk * (UPDATES_PER_COMMAND + 1) + (max_pool_size - bulk) * 2


async def bulk_update(collection: AsyncCollection[dict[str, Any]], ops: Sequence[Any]) -> None:
    """Send update (replace, delete) operations in commands of at most `UPDATES_PER_COMMAND`, a few commands at
    a time per process. FerretDB 1.24 on PostgreSQL holds a connection of its pool for every statement of
    an update command until the command ends: one command of 200 updates against a pool of 200 waited for
    ever (and took the server with it), 150 took 2 s. MongoDB takes any size; small commands cost it
    nothing. Unordered: each op stands alone (a duplicate key is reported, the rest applied)."""
    loop = id(asyncio.get_running_loop())
    turns = _update_turns.setdefault(loop, asyncio.Semaphore(UPDATE_COMMANDS_IN_FLIGHT))
    errors: list[dict[str, Any]] = []
    for start in range(0, len(ops), UPDATES_PER_COMMAND):
        async with turns:
            try:
                await collection.bulk_write(list(ops[start : start + UPDATES_PER_COMMAND]), ordered=False)
            except BulkWriteError as exc:
                errors += [{**e, "index": e["index"] + start} for e in exc.details.get("writeErrors", [])]
    if errors:
        raise BulkWriteError({"writeErrors": errors, "nInserted": 0})


class VersionClaims:
    """Compare-and-set for versioned documents that holds on FerretDB as well as MongoDB.

    FerretDB 1.24 applies `update_one({"_id": id, "version": v}, ...)` as a read then a write, so two
    concurrent writers can both match. A writer therefore first claims `<id>@<next version>` by inserting
    it into a claims collection, whose unique `_id` only one writer can win, and writes only if it won.
    A claim left by a writer that crashed before writing is cleared once older than `stale_after`.
    Claims collections are named `*_claims`, so that `prune_claims` finds and trims them.
    """

    def __init__(
        self,
        claims: AsyncCollection[dict[str, Any]],
        documents: AsyncCollection[dict[str, Any]],
        *,
        stale_after: timedelta = timedelta(seconds=30),
    ) -> None:
        if not claims.name.endswith(CLAIMS_SUFFIX):
            raise ValueError(f"claims collection {claims.name!r}: its name must end with {CLAIMS_SUFFIX!r}")
        self.claims = claims
        self.documents = documents
        self.stale_after = stale_after

    async def claim_many(
        self, wanted: Sequence[tuple[str, int]], *, marks: Mapping[str, Any] | None = None
    ) -> set[str]:
        """`claim` for many documents in one insert; the ids whose claim was won. A lost one is not cleared
        here even if stale: the caller falls back to `claim` for it, which does. `marks` adds fields to
        the claims of some ids (the write path's `outbox_minute`: what its sweep looks claims up by)."""
        now = datetime.now(UTC)
        marks = marks or {}
        claims = [{"_id": f"{doc_id}@{version}", "at": now, **marks.get(doc_id, {})} for doc_id, version in wanted]
        try:
            await self.claims.insert_many(claims, ordered=False)
            lost: set[int] = set()
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
            lost = {e["index"] for e in exc.details.get("writeErrors", [])}
        return {doc_id for i, (doc_id, _) in enumerate(wanted) if i not in lost}

    async def claim(self, doc_id: str, version: int) -> bool:
        """Win the right to write `version` of the document; False if another writer has it."""
        key = f"{doc_id}@{version}"
        now = datetime.now(UTC)
        if await insert_once(self.claims, {"_id": key, "at": now}):
            return True
        claim = await self.claims.find_one({"_id": key})
        current = await self.documents.find_one({"_id": doc_id}, {"version": 1})
        # A claim is stale when its version was never written (the document is behind it, or was never
        # created: a writer that crashed before its first insert) and it is old.
        behind = current is None or current.get("version", 0) < version
        if claim and behind and claim["at"] < now - self.stale_after:
            await self.claims.delete_one({"_id": key, "at": claim["at"]})
        return False


async def prune_claims(db: AsyncDatabase[dict[str, Any]], older_than: timedelta) -> dict[str, int]:
    """Delete version claims older than `older_than` from every `*_claims` collection of `db`; returns how
    many per collection. A claim matters only between a writer's read and its claim, milliseconds apart
    (a writer reads again before every attempt), so a claim a day old guards nothing any more; without
    pruning, each collection would keep one document per version ever written."""
    cutoff = datetime.now(UTC) - older_than
    pruned: dict[str, int] = {}
    for name in sorted(await db.list_collection_names()):
        if name.endswith(CLAIMS_SUFFIX):
            result = await busy_retry(partial(db[name].delete_many, {"at": {"$lt": cutoff}}))
            pruned[name] = result.deleted_count
    return pruned
