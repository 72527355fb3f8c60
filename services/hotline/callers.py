"""The repeat-caller index: the cases filed under each phone, ID-card and household key, newest first.

Insert-only, so the calls of one caller never update a shared document in place (a community worker
reporting household after household from one phone would make it hot; on FerretDB every update scans
the collection and concurrent updates of one document lose writes):

- A key's cases sit in slot documents `_id = "<key>#<chunk>#<slot>"` (slot 0..K-1), each claimed by a
  unique `_id` insert (a call's keys in one `insert_many`). This process hands out a key's next slot
  from memory, so its own coroutines never meet in the store; a DuplicateKeyError means another
  process took that slot: the next one is taken.
- A small head document per key holds its newest chunk, raised with `$max` before the first slot of a
  chunk is written: once per K calls of that key, never for a caller with fewer than K calls.
- A lookup reads the heads of the call's keys in one query, then the slots of chunks head-1, head and
  head+1 of every key in one `$in` query by `_id` (bounded: at most 3K ids per key). Reading head+1 too
  costs nothing extra on FerretDB (a scan either way) and keeps every slot visible should a head raise
  be lost to a concurrent one, or the first slots of a chunk be written while its raise is in flight
  in another process.
- Once a process has loaded the index into memory (`CallerIndex.load`, one read of every slot at
  start-up, in the background), lookups are answered from memory with no round trip at all: on FerretDB
  the slot read decodes the whole collection, which grows with every call. Memory is kept current by this
  process's own filings (before their insert) and by the calls other processes take (`observe`, fed from
  the help-request topic). Until the load is done, lookups read the store as above.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from common.store import GroupInserts, busy_retry, find_by

log = structlog.get_logger("hotline.callers")

SLOTS_PER_CHUNK = 50
LOAD_WAIT_S = 1.0  # how long a lookup waits for a load under way (the accept bound is 2 s)
REMEMBERED_KEYS = 10_000  # keys whose next slot this process keeps in memory (least recently used go)
LEGACY_COLLECTIONS = ("callers", "caller_claims")  # one updated document per key, before the slots


def slot_id(key: str, chunk: int, slot: int) -> str:
    return f"{key}#{chunk}#{slot}"


@dataclass(frozen=True)
class KeyView:
    """What was known of one key when it was looked up: its head, its case ids newest first (each once),
    and how many slots were seen taken (the next free slot is at or after that position)."""

    head: int
    cases: tuple[str, ...] = ()
    filed: int = 0

    def case_ids(self, limit: int) -> list[str]:
        """The key's most recent case ids, newest first. By case number (date-sortable) rather than by
        slot: concurrent calls file their slots in a slightly different order than they got their numbers,
        and "most recent" should mean the same to an operator as the numbers say."""
        return list(self.cases[:limit])


@dataclass
class _KeyState:
    """This process's view of one key: the next slot to hand out and the head known to be stored."""

    chunk: int = 0
    slot: int = 0
    head: int = 0
    raising: asyncio.Lock = field(default_factory=asyncio.Lock)

    def catch_up(self, view: KeyView, per_chunk: int) -> None:
        """Never hand out a slot at or below one already seen taken (another process wrote it)."""
        self.head = max(self.head, view.head)
        seen = divmod(max(view.filed, view.head * per_chunk), per_chunk)
        if seen > (self.chunk, self.slot):
            self.chunk, self.slot = seen

    def take(self, per_chunk: int) -> tuple[int, int]:
        taken = (self.chunk, self.slot)
        self.chunk, self.slot = (self.chunk + 1, 0) if self.slot + 1 == per_chunk else (self.chunk, self.slot + 1)
        return taken


class CallerMemory:
    """Every key's case ids in this process's memory, each once. Kept small, since it holds every call
    ever filed (100,000 cases of two keys each: 60 MB as a dict of lists of strings, 26 MB so): a key is
    held as a 16-byte digest of it, a key with one case holds the case id itself rather than a list, and
    the keys of one call share one case id string."""

    def __init__(self) -> None:
        self._cases: dict[bytes, str | list[str]] = {}
        self.ready = False  # every slot stored before the load began is in here
        self.loading = False  # a load is under way (`CallerIndex.load`)
        self.loaded = asyncio.Event()  # set with `ready`

    def __len__(self) -> int:
        return len(self._cases)

    @staticmethod
    def digest(key: str) -> bytes:
        return hashlib.blake2b(key.encode(), digest_size=16).digest()

    def cases_of(self, key: str) -> list[str]:
        held = self._cases.get(self.digest(key))
        return [] if held is None else [held] if isinstance(held, str) else list(held)

    def note(self, key: str, case_id: str) -> None:
        _hold(self._cases, self.digest(key), case_id)

    def merge(self, loaded: dict[bytes, str | list[str]]) -> None:
        """Add what was read from the store (by key digest, each key's cases in any order, a case once or
        more) to what was noted meanwhile."""
        for digest, held in loaded.items():
            if isinstance(held, list):
                loaded[digest] = list(dict.fromkeys(held))
        for digest, held in self._cases.items():
            for case_id in [held] if isinstance(held, str) else held:
                _hold(loaded, digest, case_id)
        self._cases = loaded
        self.ready = True
        self.loaded.set()

    def view(self, key: str) -> KeyView:
        """Memory says nothing of the stored head (0): a process raises it itself before it first writes a
        chunk above the head it knows, so the store stays right for processes that have not loaded."""
        cases = self.cases_of(key)
        return KeyView(head=0, cases=tuple(sorted(cases, reverse=True)), filed=len(cases))


def _hold(held_by: dict[bytes, str | list[str]], digest: bytes, case_id: str, *, once: bool = True) -> None:
    """File a case id under a key digest (once, unless `once` is False: the caller dedupes later): the id
    alone for a key's first case, a list from its second."""
    held = held_by.get(digest)
    if held is None:
        held_by[digest] = case_id
    elif isinstance(held, str):
        if held != case_id:
            held_by[digest] = [held, case_id]
    elif not once or case_id not in held:
        held.append(case_id)


class CallerIndex:
    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, per_chunk: int = SLOTS_PER_CHUNK, remembered: int = REMEMBERED_KEYS
    ) -> None:
        self.db = db
        self.slots = db["caller_slots"]
        self.heads = db["caller_heads"]
        self.per_chunk = per_chunk
        self.remembered = remembered
        self._keys: OrderedDict[str, _KeyState] = OrderedDict()
        self.memory = CallerMemory()
        self._inserts = GroupInserts(self.slots)  # concurrent calls' slots in one insert
        self.load_wait_s = LOAD_WAIT_S
        self.partial_lookups = 0  # lookups answered from memory while the load was still under way

    def _state(self, key: str) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _KeyState()
            if len(self._keys) > self.remembered:
                self._keys.popitem(last=False)  # a forgotten key is caught up again from the next read
        else:
            self._keys.move_to_end(key)
        return state

    async def load(self, batch_size: int = 5_000) -> int:
        """Read every slot into memory (one pass over the collection); from then on lookups need no round
        trip. Returns the number of keys known."""
        loaded: dict[bytes, str | list[str]] = {}
        shared: dict[str, str] = {}  # one string per case id, whatever number of keys it is filed under
        self.memory.loading = True
        try:
            async for doc in self.slots.find({}, {"case_id": 1}).batch_size(batch_size):
                case_id = shared.setdefault(doc["case_id"], doc["case_id"])
                _hold(loaded, self.memory.digest(doc["_id"].rsplit("#", 2)[0]), case_id, once=False)
        finally:
            self.memory.loading = False
        self.memory.merge(loaded)
        log.info("caller index loaded into memory", keys=len(self.memory))
        return len(self.memory)

    def observe(self, case_id: str, keys: Sequence[str]) -> None:
        """A call another process (or this one) took: remember it under its keys."""
        for key in keys:
            self.memory.note(key, case_id)

    async def read(self, keys: Sequence[str]) -> dict[str, KeyView]:
        """Every key's cases: from memory once loaded, else its head and its slots in chunks head-1..head+1
        (two queries, whatever the keys hold)."""
        if not keys:
            return {}
        if not self.memory.ready and self.memory.loading:
            # The load is one pass over the slots; a lookup of the store meanwhile is a `$in` that FerretDB
            # answers by decoding every slot, and calls arriving at a surge's rate starve the load itself
            # (measured with 200,000 keys: no call answered in 60 s). Wait for it a little instead, then
            # answer from what memory holds: the calls taken since start-up (repeat callers of earlier
            # days are missed until the load ends, seconds later).
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.memory.loaded.wait(), self.load_wait_s)
            if not self.memory.ready:
                self.partial_lookups += 1
                return {key: self.memory.view(key) for key in keys}
        if self.memory.ready:
            return {key: self.memory.view(key) for key in keys}
        heads = {d["_id"]: int(d["chunk"]) for d in await find_by(self.heads, "_id", list(keys))}
        ids = [
            slot_id(key, chunk, slot)
            for key in keys
            for chunk in range(max(0, heads.get(key, 0) - 1), heads.get(key, 0) + 2)
            for slot in range(self.per_chunk)
        ]
        found: dict[str, list[tuple[int, int, str]]] = {key: [] for key in keys}
        for doc in await find_by(self.slots, "_id", ids):
            key, chunk, slot = doc["_id"].rsplit("#", 2)
            found[key].append((int(chunk), int(slot), doc["case_id"]))
        return {
            key: KeyView(
                head=heads.get(key, 0),
                cases=tuple(sorted({c for _, _, c in found[key]}, reverse=True)),
                filed=max((chunk * self.per_chunk + slot + 1 for chunk, slot, _ in found[key]), default=0),
            )
            for key in keys
        }

    async def add(self, case_id: str, keys: Sequence[str], seen: dict[str, KeyView] | None = None) -> None:
        """File the case under each key, one insert for all of them. `seen` is what `read` returned for
        this call, if it was read."""
        if seen is None and self.memory.ready:
            seen = {key: self.memory.view(key) for key in keys}
        self.observe(case_id, keys)
        states = {key: self._state(key) for key in keys}
        for key, state in states.items():
            if seen and key in seen:
                state.catch_up(seen[key], self.per_chunk)
        document = {"case_id": case_id, "at": datetime.now(UTC)}
        waiting = list(keys)
        for _ in range(4 * self.per_chunk):
            if not waiting:
                return
            # Taken before any await, so no two coroutines of this process get one slot.
            taken = {key: states[key].take(self.per_chunk) for key in waiting}
            await asyncio.gather(
                *(
                    self._raise_head(key, states[key], chunk)
                    for key, (chunk, _) in taken.items()
                    if chunk > states[key].head
                )
            )
            slots = [{"_id": slot_id(key, *taken[key]), **document} for key in waiting]
            outcomes = await asyncio.gather(*(self._inserts.insert(slot) for slot in slots), return_exceptions=True)
            if failed := next(
                (o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, DuplicateKeyError)), None
            ):
                raise failed
            # another process took these slots: the next ones
            waiting = [key for key, o in zip(waiting, outcomes, strict=True) if isinstance(o, DuplicateKeyError)]
        raise RuntimeError(f"no free caller slot after {4 * self.per_chunk} tries")

    async def _raise_head(self, key: str, state: _KeyState, chunk: int) -> None:
        """Raise the stored head to `chunk` before any slot of it is written, one raise per key at a time
        (two concurrent updates of one document can lose one on FerretDB)."""
        async with state.raising:
            if state.head >= chunk:
                return  # a raise this coroutine waited for already covered it
            # The newest chunk handed out so far: one write covers every coroutine waiting here.
            target = max(chunk, state.chunk if state.slot else state.chunk - 1)
            try:
                await busy_retry(lambda: self.heads.update_one({"_id": key}, {"$max": {"chunk": target}}, upsert=True))
            except DuplicateKeyError:  # another process created the head at the same moment: now it exists
                await busy_retry(lambda: self.heads.update_one({"_id": key}, {"$max": {"chunk": target}}))
            state.head = max(state.head, target)

    async def migrate_legacy(self) -> int:
        """Copy the one-document-per-key index of earlier versions into slots, then drop it; returns how
        many keys were copied. Safe to run twice or from two processes at once (slots are unique)."""
        names = await self.db.list_collection_names()
        if LEGACY_COLLECTIONS[0] not in names:
            return 0
        copied = 0
        async for doc in self.db[LEGACY_COLLECTIONS[0]].find({}):
            cases = list(dict.fromkeys(doc.get("cases", [])))
            slots = [
                {
                    "_id": slot_id(doc["_id"], i // self.per_chunk, i % self.per_chunk),
                    "case_id": case_id,
                    "at": datetime.now(UTC),
                }
                for i, case_id in enumerate(cases)
            ]
            if not slots:
                continue
            try:
                await busy_retry(functools.partial(self.slots.insert_many, slots, ordered=False))
            except BulkWriteError as exc:
                if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                    raise
            if last_chunk := (len(cases) - 1) // self.per_chunk:
                await busy_retry(
                    functools.partial(
                        self.heads.update_one, {"_id": doc["_id"]}, {"$max": {"chunk": last_chunk}}, upsert=True
                    )
                )
            copied += 1
        for name in LEGACY_COLLECTIONS:
            await self.db.drop_collection(name)
        log.info("legacy caller index migrated", keys=copied)
        return copied
