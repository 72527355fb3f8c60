"""The insert-only caller index against the real store: slots, chunk heads, other processes, migration."""

from __future__ import annotations

import asyncio

import pytest

from services.hotline.callers import CallerIndex, slot_id

pytestmark = pytest.mark.component

KEY = "phone:abc123"


def case(n: int) -> str:
    return f"CQ-20260215-{n:06d}"


async def stored_slots(db) -> list[str]:
    return sorted(d["_id"] for d in await db["caller_slots"].find({}, {"_id": 1}).to_list())


async def head(db) -> int | None:
    doc = await db["caller_heads"].find_one({"_id": KEY})
    return doc["chunk"] if doc else None


async def test_concurrent_calls_of_one_caller_take_distinct_slots_without_retrying(db) -> None:
    index = CallerIndex(db, per_chunk=5)
    await asyncio.gather(*(index.add(case(n), [KEY]) for n in range(1, 13)))
    assert await stored_slots(db) == sorted(slot_id(KEY, n // 5, n % 5) for n in range(12))
    assert await head(db) == 2


async def test_a_caller_with_fewer_calls_than_a_chunk_never_writes_a_head(db) -> None:
    index = CallerIndex(db, per_chunk=5)
    for n in range(1, 6):
        await index.add(case(n), [KEY, "household:h1"])
    assert await head(db) is None and await db["caller_heads"].count_documents({}) == 0
    view = (await index.read([KEY]))[KEY]
    assert view.case_ids(50) == [case(n) for n in range(5, 0, -1)]


async def test_the_head_moves_at_the_chunk_boundary_before_the_new_chunk_is_written(db) -> None:
    index = CallerIndex(db, per_chunk=5)
    for n in range(1, 6):
        await index.add(case(n), [KEY])
    assert await head(db) is None
    await index.add(case(6), [KEY])
    assert await head(db) == 1
    assert slot_id(KEY, 1, 0) in await stored_slots(db)


async def test_lookup_reads_across_the_last_two_chunks_newest_first(db) -> None:
    index = CallerIndex(db, per_chunk=5)
    for n in range(1, 13):  # chunks 0 and 1 full, chunk 2 holds two
        await index.add(case(n), [KEY])
    view = (await CallerIndex(db, per_chunk=5).read([KEY]))[KEY]
    assert view.head == 2
    assert view.case_ids(50) == [case(n) for n in range(12, 5, -1)]  # chunks 1 and 2; chunk 0 is older
    assert view.case_ids(5) == [case(n) for n in range(12, 7, -1)]


async def test_a_slot_another_process_took_is_skipped(db) -> None:
    first, second = CallerIndex(db, per_chunk=5), CallerIndex(db, per_chunk=5)
    for n in range(1, 4):
        await first.add(case(n), [KEY])
    await second.add(case(4), [KEY])  # knows nothing of the first's slots: collides, then takes the next
    await first.add(case(5), [KEY])  # its memory says slot 3, which the second took
    await first.add(case(6), [KEY])  # over the chunk boundary
    assert await stored_slots(db) == sorted([*(slot_id(KEY, 0, s) for s in range(5)), slot_id(KEY, 1, 0)])
    view = (await second.read([KEY]))[KEY]
    assert view.case_ids(50) == [case(n) for n in range(6, 0, -1)]


async def test_a_process_that_read_first_starts_after_the_newest_slot(db) -> None:
    first, second = CallerIndex(db, per_chunk=5), CallerIndex(db, per_chunk=5)
    for n in range(1, 8):
        await first.add(case(n), [KEY])
    seen = await second.read([KEY])
    await second.add(case(8), [KEY], seen)
    assert slot_id(KEY, 1, 2) in await stored_slots(db)


async def test_a_lost_head_raise_still_leaves_every_slot_visible_and_is_repaired(db) -> None:
    index = CallerIndex(db, per_chunk=5)
    for n in range(1, 13):
        await index.add(case(n), [KEY])
    # What a concurrent $max from another process can do on FerretDB: the raise to chunk 2 is lost.
    await db["caller_heads"].update_one({"_id": KEY}, {"$set": {"chunk": 1}})
    other = CallerIndex(db, per_chunk=5)
    seen = await other.read([KEY])
    assert seen[KEY].case_ids(3) == [case(12), case(11), case(10)]
    await other.add(case(13), [KEY], seen)
    assert await head(db) == 2 and slot_id(KEY, 2, 2) in await stored_slots(db)


async def test_the_one_document_per_key_index_of_earlier_versions_is_migrated(db) -> None:
    await db["callers"].insert_one({"_id": KEY, "cases": [case(n) for n in range(1, 8)], "version": 7})
    await db["caller_claims"].insert_one({"_id": f"{KEY}@7"})
    index = CallerIndex(db, per_chunk=5)
    assert await index.migrate_legacy() == 1
    assert not {"callers", "caller_claims"} & set(await db.list_collection_names())
    assert (await index.read([KEY]))[KEY].case_ids(50) == [case(n) for n in range(7, 0, -1)]
    await index.add(case(8), [KEY], await index.read([KEY]))
    assert (await index.read([KEY]))[KEY].case_ids(1) == [case(8)]
    assert await CallerIndex(db).migrate_legacy() == 0  # a second start finds nothing to do
