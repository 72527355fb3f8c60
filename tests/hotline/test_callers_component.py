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


async def counted_index(db, mongodb_url: str):
    """An index on a client of its own that counts the commands it sends."""
    from common.settings import ServiceSettings
    from common.store import CommandCounter, open_mongo

    counter = CommandCounter()
    client = open_mongo(ServiceSettings(service_name="test", mongodb_url=mongodb_url), counter=counter)
    return CallerIndex(client[db.name], per_chunk=5), counter, client


async def test_once_loaded_lookups_come_from_memory_without_a_round_trip(db, mongodb_url: str) -> None:
    writer = CallerIndex(db, per_chunk=5)
    for n in range(1, 8):
        await writer.add(case(n), [KEY])
    index, counter, client = await counted_index(db, mongodb_url)
    try:
        assert await index.load() == 1
        counter.counts.clear()
        view = (await index.read([KEY, "household:none"]))[KEY]
        assert dict(counter.counts) == {}
        assert view.case_ids(50) == [case(n) for n in range(7, 0, -1)]  # all of them, not only the last chunks
        # The next filing takes the next free slot straight away, from what memory knows.
        await index.add(case(8), [KEY], await index.read([KEY]))
        assert slot_id(KEY, 1, 2) in await stored_slots(db)
        counter.counts.clear()  # (the first filing in a chunk raises the head once, should it lag)
        await index.add(case(9), [KEY], await index.read([KEY]))
        assert dict(counter.counts) == {"insert": 1}
        assert slot_id(KEY, 1, 3) in await stored_slots(db)
    finally:
        await client.close()


async def test_calls_other_processes_take_are_seen_once_observed(db) -> None:
    index = CallerIndex(db, per_chunk=5)
    await index.load()
    other = CallerIndex(db, per_chunk=5)
    await other.add(case(1), [KEY])
    assert (await index.read([KEY]))[KEY].case_ids(50) == []  # memory is not the store ...
    index.observe(case(1), [KEY])  # ... until the help-request topic brings the other process's call
    index.observe(case(1), [KEY])  # (and a call seen twice, e.g. this process's own, counts once)
    assert (await index.read([KEY]))[KEY].case_ids(50) == [case(1)]
    await index.add(case(2), [KEY])
    assert await stored_slots(db) == [slot_id(KEY, 0, 0), slot_id(KEY, 0, 1)]  # no collision: it knew of one


async def test_what_is_filed_while_the_load_runs_is_kept(db) -> None:
    await CallerIndex(db, per_chunk=5).add(case(1), [KEY])
    index = CallerIndex(db, per_chunk=5)
    loading = asyncio.ensure_future(index.load())
    await index.add(case(2), [KEY])  # before, during or after the load's read: kept either way
    await loading
    assert (await index.read([KEY]))[KEY].case_ids(50) == [case(2), case(1)]


async def test_while_the_load_runs_a_lookup_waits_for_it_and_never_scans_the_slots(db, mongodb_url: str) -> None:
    """With many callers the load takes seconds, and a lookup of the store meanwhile makes FerretDB decode
    every slot: calls at a surge's rate starved the load (measured with 200,000 keys). A lookup waits for
    the load a little, then answers from memory (the calls taken since start-up), with no store read."""
    writer = CallerIndex(db, per_chunk=5)
    await writer.add(case(1), [KEY])
    index, counter, client = await counted_index(db, mongodb_url)
    try:
        index.load_wait_s = 0.2
        index.memory.loading = True  # as while `load` reads the slots
        index.observe(case(2), [KEY])  # a call taken since start-up
        counter.counts.clear()
        started = asyncio.get_running_loop().time()
        view = (await index.read([KEY]))[KEY]
        assert asyncio.get_running_loop().time() - started >= 0.2
        assert view.case_ids(50) == [case(2)] and index.partial_lookups == 1
        assert dict(counter.counts) == {}  # no slot read, no head read

        # A load that ends while a lookup waits answers it in full.
        index.load_wait_s = 30
        waiting = asyncio.ensure_future(index.read([KEY]))  # the load is still marked under way
        await asyncio.sleep(0)
        await index.load()
        view = (await waiting)[KEY]
        assert view.case_ids(50) == [case(2), case(1)] and index.partial_lookups == 1
    finally:
        await client.close()
