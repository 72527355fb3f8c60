"""The case search index (its own store, as the caller index is): one small entry per case (`case_search`),
with its text terms for the searches by name or address, and the days that have cases.

On FerretDB only equality filters reach PostgreSQL; a regex, a range, `$in`/`$or` or a sort makes it
decode every document of the collection in Go, and every document it returns costs too (the larger, the
more). So a search asks this small collection by equality only (a phone or ID-card key, a day, a text
term, a district, a need, a status, emergency) and for few entries: when no key narrows it, first one
probe of at most `PROBE` entries; when that finds more, the months and then the days with cases, newest
first, until the page is full. (Entries without their texts used to be kept apart as well, for searches
not by text to read half the bytes; every call then cost two inserts and every status change two
rewrites, where a search reads a hundred entries at most. `backfill_once` folds an older database's two
indexes into one.)

The index has an archive (`case_search_archive`): when the hotline archives an intake record
(`common.aggregates`, finished and unchanged for `archive_after_s`), its entry moves too, so the entries
whose status is rewritten on the hot path stay few as history grows. A search asks both; a status change
of an archived case brings its entry back.
`entry_matches` decides every candidate in Python and the page is sorted there, newest first. An entry
is inserted when its case is taken and rewritten when its caller-facing status changes; `backfill`
files the cases taken before the index (or whose entry is missing or stale), idempotently; the hotline
runs it in the background at its first start on a database (`backfill_once`), and it can be run by hand:

    python -m services.hotline.search_index backfill
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import structlog
from pymongo import ASCENDING, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from common.store import (
    GroupInserts,
    bulk_update,
    busy_retry,
    create_query_indexes,
    find_by,
    move_documents,
)
from contracts.events.hotline import HelpRequested
from services.hotline.domain import CaseStatus, case_day, project_status
from services.hotline.domain.search import (
    BOUNDED_BY,
    TEXT_FIELDS,
    CaseFilter,
    days_between,
    entry_matches,
    filter_terms,
    index_equalities,
    newest_first,
    search_entry,
    status_fields,
)

log = structlog.get_logger("hotline.search")
Find = Callable[[dict[str, Any], int], Awaitable[list[dict[str, Any]]]]
PROBE = 100  # entries one probe reads at most: fewer mean every candidate is in hand
TERMS_PROBED = 3  # a text's terms tried one by one, the most telling first
MONTH_MOST = 100  # entries a month's query reads at most before its days are read one by one
BACKFILL_BATCH = 500
BACKFILL_MARK = "search-index-backfilled-2"  # in `counters`, once a backfill completed (2: one index)
# The indexes of entries with their texts, from when the entries without them were kept apart: folded into
# `case_search` by the backfill (an entry missing its texts gets them), then dropped.
RETIRED = ("case_search_text", "case_search_text_archive")


class SearchIndex:
    def __init__(
        self, db: AsyncDatabase[dict[str, Any]], *, may_be_archived: Callable[[str], bool] = lambda _: True
    ) -> None:
        self.db = db
        self.entries = db["case_search"]
        self.entries_archive = db["case_search_archive"]
        self.days = db["case_search_days"]
        self.may_be_archived = may_be_archived  # False: the case is too recent for its entry to be archived
        self._inserts = GroupInserts(self.entries)  # concurrent calls' entries in one insert
        self._days_known: set[str] = set()
        self._rewrites: dict[str, CaseStatus] = {}  # statuses decided, waiting for the rewrite on its way
        self._rewriting: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        """An index per equality a search asks (on FerretDB served by the local stack's GIN twins, so a search
        by phone, ID card or term is an index lookup there too: `create_query_indexes`)."""
        fields = ("day", "month", "phone_key", "id_card_key", "district", "status", "terms")
        every = (self.entries, self.entries_archive)
        await create_query_indexes(self.db, [(c, [(f, ASCENDING)]) for c in every for f in fields])

    async def add(self, entry: dict[str, Any]) -> None:
        """File a new case's entry (a repeat is ignored) and a new day, the two writes at the same time."""

        async def insert(doc: dict[str, Any]) -> None:
            with contextlib.suppress(DuplicateKeyError):
                await self._inserts.insert(doc)

        await asyncio.gather(insert(entry), self._note_days([entry["day"]]))

    async def _note_days(self, days: list[str]) -> None:
        new = sorted(set(days) - self._days_known)
        if not new:
            return
        try:
            await busy_retry(lambda: self.days.insert_many([{"_id": d} for d in new], ordered=False))
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
        self._days_known.update(new)

    async def set_statuses(self, statuses: dict[str, CaseStatus]) -> None:
        """Rewrite the status of the entries whose case's status changed (bulk commands per index). The
        entries of a case old enough to be archived are first brought back from the archive if they are
        there (recent cases' never are, and are not looked for)."""
        if not statuses:
            return
        old = [c for c in statuses if self.may_be_archived(c)]
        if old:
            await self.restore(old)
        updates = [UpdateOne({"_id": c}, {"$set": status_fields(s)}) for c, s in statuses.items()]
        await busy_retry(partial(bulk_update, self.entries, updates))

    def set_statuses_soon(self, statuses: dict[str, CaseStatus]) -> None:
        """`set_statuses` off the caller's path (the status consumer's next batch need not wait for it): one
        rewrite at a time, and the statuses decided meanwhile go together in the next, a case's latest
        winning, so a case's rewrites never overtake each other. A failure is logged; the backfill mends
        stale statuses (`backfill`)."""
        if not statuses:
            return
        self._rewrites.update(statuses)
        if self._rewriting is None or self._rewriting.done():
            self._rewriting = asyncio.ensure_future(self._rewrite())

    async def _rewrite(self) -> None:
        while self._rewrites:
            statuses, self._rewrites = self._rewrites, {}
            try:
                await self.set_statuses(statuses)
            except PyMongoError as exc:
                log.warning("search statuses not rewritten", cases=len(statuses), error=repr(exc))

    async def settle(self) -> None:
        """Wait for the status rewrites decided so far (a search first does: it sees what this process
        decided)."""
        while self._rewriting is not None and not self._rewriting.done():
            await asyncio.shield(self._rewriting)

    async def archive(self, case_ids: list[str]) -> None:
        """Move these cases' entries to the archive (their intake records were archived): copied first, so a
        failure in between leaves an entry in both, which a search counts once."""
        await move_documents(self.entries, self.entries_archive, await find_by(self.entries, "_id", case_ids))

    async def restore(self, case_ids: list[str]) -> None:
        """Bring these cases' entries back from the archive, if they are there (none are looked for in the
        working index: an entry in both is the working one's)."""
        await move_documents(self.entries_archive, self.entries, await find_by(self.entries_archive, "_id", case_ids))

    async def search(self, f: CaseFilter, *, skip: int, limit: int) -> tuple[list[dict[str, Any]], bool]:
        """One page of the entries matching, newest first, and whether more follow."""
        await self.settle()
        wanted = skip + limit + 1
        equal = index_equalities(f)
        terms = filter_terms(f)
        # What a search does not need sent back: the terms always, the texts when it is not by text.
        hidden = {"terms": 0} if terms else dict.fromkeys(TEXT_FIELDS, 0)

        async def find(query: dict[str, Any], most: int = 0) -> list[dict[str, Any]]:
            """The working index's entries, then the archive's up to `most` in all (an entry in both, left
            by a move cut short, counts once)."""
            found = await self.entries.find(query, hidden).limit(most).to_list()
            if most and len(found) >= most:
                return found
            seen = {e["_id"] for e in found}
            rest = await self.entries_archive.find(query, hidden).limit(most - len(found) if most else 0).to_list()
            return found + [e for e in rest if e["_id"] not in seen]

        found: list[dict[str, Any]] | None = None
        if any(field in equal for field in BOUNDED_BY):
            found = await find(equal)
        else:
            probes = [{**equal, "terms": t} for t in terms[:TERMS_PROBED]] if terms else [equal] if equal else []
            for query in probes:
                candidates = await find(query, PROBE + 1)
                if len(candidates) <= PROBE:  # all of them
                    found = candidates
                    break
        if found is None:  # many match: the newest months and days hold the page
            found = await self._walk(f, {**equal, **({"terms": terms[0]} if terms else {})}, find, wanted)
        page = newest_first([e for e in found if entry_matches(f, e)])
        return page[skip : skip + limit], len(page) > skip + limit

    async def _walk(self, f: CaseFilter, equal: dict[str, Any], find: Find, wanted: int) -> list[dict[str, Any]]:
        """The matches of the newest months and days in the filter's range, until `wanted` are found: a
        month in one query while it holds at most `MONTH_MOST` candidates, else its days one by one (and
        every older month by days too: the filter is a common one)."""
        months: dict[str, list[str]] = {}
        for day in days_between(await self._all_days(), f):
            months.setdefault(day[:6], []).append(day)
        by_month = bool(equal)  # with no filter at all every month is full
        found: list[dict[str, Any]] = []
        for month, days in months.items():
            whole = await find({**equal, "month": month}, MONTH_MOST + 1) if by_month and len(days) > 1 else []
            if by_month and len(days) > 1 and len(whole) <= MONTH_MOST:
                found += [e for e in whole if entry_matches(f, e)]
            else:
                by_month = False
                for day in days:
                    found += [e for e in await find({**equal, "day": day}, 0) if entry_matches(f, e)]
                    if len(found) >= wanted:
                        break
            if len(found) >= wanted:
                break
        return found

    async def _all_days(self) -> list[str]:
        days = [d["_id"] for d in await self.days.find({}).to_list()]
        self._days_known.update(days)
        return days

    async def backfill(
        self, intakes: AsyncCollection[dict[str, Any]], archived: AsyncCollection[dict[str, Any]] | None = None
    ) -> tuple[int, int]:
        """File every intake record's entry that is missing or lacks its texts, and rewrite every stale
        status: (filed, updated); the archived records' (`archived`) in the index's archive. Reads every
        collection once; running it again changes nothing."""
        added, updated = await self._backfill_part(intakes, self.entries)
        if archived is not None:
            more = await self._backfill_part(archived, self.entries_archive)
            added, updated = added + more[0], updated + more[1]
        return added, updated

    async def _backfill_part(
        self, intakes: AsyncCollection[dict[str, Any]], entries: AsyncCollection[dict[str, Any]]
    ) -> tuple[int, int]:
        shown = {"status": 1, "label_zh": 1, "label_en": 1}
        filed = {e["_id"]: e for e in await entries.find({}, {**shown, "terms": 1}).to_list()}
        added = updated = 0
        missing: list[dict[str, Any]] = []
        refiled: list[ReplaceOne[dict[str, Any]]] = []
        stale: dict[str, CaseStatus] = {}
        days: set[str] = set()
        fields = {"event": 1, "keys": 1, "status": 1, "received_at": 1, "emergency": 1}
        async for doc in intakes.find({}, fields):
            event = HelpRequested.model_validate(doc["event"])
            status = (
                CaseStatus.model_validate(doc["status"])
                if doc.get("status")
                else project_status(event.case_id, received_at=event.received_at, emergency=event.emergency, events=[])
            )
            entry = filed.get(event.case_id)
            days.add(case_day(event.received_at))
            if entry is None:
                missing.append(search_entry(event, doc.get("keys") or {}, status))
            elif "terms" not in entry:  # filed when the texts were kept apart (`RETIRED`)
                refiled.append(ReplaceOne({"_id": event.case_id}, search_entry(event, doc.get("keys") or {}, status)))
            elif {k: entry.get(k) for k in shown} != status_fields(status):
                stale[event.case_id] = status
            if len(missing) >= BACKFILL_BATCH:
                added += await self._insert_missing(missing, entries)
                missing = []
            if len(refiled) >= BACKFILL_BATCH:
                added += await _rewrite(entries, refiled)
                refiled = []
        added += await self._insert_missing(missing, entries) + await _rewrite(entries, refiled)
        await self._note_days(sorted(days))  # a day filed before its first entry (or lost) too
        for chunk in range(0, len(stale), BACKFILL_BATCH):
            part = list(stale.items())[chunk : chunk + BACKFILL_BATCH]
            updates = [UpdateOne({"_id": c}, {"$set": status_fields(s)}) for c, s in part]
            await busy_retry(partial(bulk_update, entries, updates))
            updated += len(part)
        return added, updated

    async def backfill_once(
        self,
        intakes: AsyncCollection[dict[str, Any]],
        archived: AsyncCollection[dict[str, Any]],
        marks: AsyncCollection[dict[str, Any]],
    ) -> None:
        """At start-up: backfill unless a backfill already completed in this database (its mark), so the
        first start after the index arrived (or became one) files every case taken before it; then the
        retired indexes go."""
        if await marks.find_one({"_id": BACKFILL_MARK}) is not None:
            return
        added, updated = await self.backfill(intakes, archived)
        for name in RETIRED:
            await self.db[name].drop()
        with contextlib.suppress(DuplicateKeyError):
            await marks.insert_one({"_id": BACKFILL_MARK, "added": added, "updated": updated})
        log.info("search index backfilled", added=added, updated=updated)

    async def _insert_missing(self, entries: list[dict[str, Any]], index: AsyncCollection[dict[str, Any]]) -> int:
        """Insert the entries (one already there is refused)."""
        if not entries:
            return 0
        try:
            await busy_retry(partial(index.insert_many, entries, ordered=False))
        except BulkWriteError as exc:
            if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
                raise
        return len(entries)


async def _rewrite(index: AsyncCollection[dict[str, Any]], entries: list[ReplaceOne[dict[str, Any]]]) -> int:
    """Write these entries over the ones there (a bulk write); how many."""
    if entries:
        await busy_retry(partial(bulk_update, index, entries))
    return len(entries)


async def _backfill() -> None:
    from common.store import open_mongo
    from services.hotline.settings import Settings

    settings = Settings()
    client = open_mongo(settings)
    try:
        db = client[settings.database_name]
        added, updated = await SearchIndex(db).backfill(db["intakes"], db["intakes_archive"])
        log.info("search index backfilled", added=added, updated=updated)
        print(f"search index: {added} entries added, {updated} statuses brought up to date")
    finally:
        await client.close()


if __name__ == "__main__":
    if sys.argv[1:] != ["backfill"]:
        raise SystemExit("usage: python -m services.hotline.search_index backfill")
    asyncio.run(_backfill())
