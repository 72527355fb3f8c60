"""The shared write path (`common.aggregates`) against the real store: concurrent writers in several
processes lose nothing, a crash between the write and the publish is finished by the sweep, a batch does
a bounded number of round trips, and archived documents come back when they change."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from pydantic import BaseModel
from pymongo.monitoring import CommandListener

from common.aggregates import SWEEP_CHECKPOINTS, Aggregates, Codec
from common.store import CommandCounter
from tests.support.processes import ROOT

pytestmark = pytest.mark.integration


class Tally(BaseModel):
    id: str
    items: list[str] = []
    outbox: list[dict[str, Any]] = []


CODEC = Codec(
    load=lambda doc: Tally(id=doc["_id"], items=doc.get("items", []), outbox=doc.get("outbox", [])),
    dump=lambda t: {"_id": t.id, "items": t.items, "outbox": t.outbox},
)


def add_to(doc_id: str, item: str):
    """A pure change: record the item and the event announcing it (nothing to change if it is there)."""

    def change(current: Tally | None) -> Tally | None:
        tally = current or Tally(id=doc_id)
        if item in tally.items:
            return None
        return tally.model_copy(
            update={"items": [*tally.items, item], "outbox": [*tally.outbox, {"event_id": f"{doc_id}:{item}"}]}
        )

    return change


async def published_outbox(db, doc) -> bool:
    """Whether the document's stored outbox is recorded as published (it is not cleared by a write)."""
    return await db["tallies_published_claims"].find_one({"_id": f"{doc['_id']}@{doc['version']}"}) is not None


class Published:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def __call__(self, batch) -> None:
        for _, entries in batch:
            self.events += [e["event_id"] for e in entries]


async def test_writers_in_many_processes_lose_nothing_and_publish_every_event(db) -> None:
    """Twenty writers, each its own `Aggregates` (another process: no shared locks), change one document
    at once: every item is kept, the version counts every write, every event is published, the outbox
    ends empty."""
    published = Published()
    writers = [Aggregates(db["tallies"], db["tally_claims"], CODEC, published) for _ in range(20)]
    results = await asyncio.gather(*(w.change("t-1", add_to("t-1", f"i{n}")) for n, w in enumerate(writers)))
    assert all(r is not None for r in results)
    doc = await db["tallies"].find_one({"_id": "t-1"})
    assert sorted(doc["items"]) == sorted(f"i{n}" for n in range(20))
    assert set(published.events) == {f"t-1:i{n}" for n in range(20)}
    assert await published_outbox(db, doc)


async def test_a_batch_from_two_processes_keeps_every_change(db) -> None:
    published = Published()
    first, second = (Aggregates(db["tallies"], db["tally_claims"], CODEC, published) for _ in range(2))
    ids = [f"t-{n}" for n in range(8)]
    batches = [first.change_many({i: add_to(i, f"a{n}") for i in ids}) for n in range(3)]
    batches += [second.change_many({i: add_to(i, f"b{n}") for i in ids}) for n in range(3)]
    singles = [second.change(i, add_to(i, f"s{n}")) for n in range(2) for i in ids]
    outcomes, _ = await asyncio.gather(asyncio.gather(*batches), asyncio.gather(*singles))
    assert all(set(o.written) == set(ids) for o in outcomes)
    expected = sorted([f"a{n}" for n in range(3)] + [f"b{n}" for n in range(3)] + [f"s{n}" for n in range(2)])
    for doc in await db["tallies"].find({}).to_list():
        assert sorted(doc["items"]) == expected, doc["_id"]
        assert await published_outbox(db, doc)
    assert len(published.events) >= len(ids) * len(expected)
    assert set(published.events) == {f"{i}:{item}" for i in ids for item in expected}


async def test_a_batch_costs_a_bounded_number_of_round_trips(db, mongodb_url) -> None:
    """Claim, write, mark published (the mark after the batch): three writes to create 2 documents or 200
    (changing 200 adds only the update commands, at most `UPDATES_PER_COMMAND` updates each); the read is
    one `$in` on MongoDB and, on FerretDB (which decodes the whole collection for a `$in`), one equality
    query per document, an index lookup each."""
    from pymongo import AsyncMongoClient

    from common.store import UPDATES_PER_COMMAND, serves_queries_from_indexes

    ferret = not await serves_queries_from_indexes(db)

    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        counted = client[db.name]
        # Without the memory of what it wrote, so that every batch reads (the memory: the tests below).
        cases = Aggregates(counted["tallies"], counted["tally_claims"], CODEC, Published(), cache_size=0)

        async def cost(size: int, prefix: str, item: str) -> int:
            before = counter.sent.copy()
            outcome = await cases.change_many({f"{prefix}{n}": add_to(f"{prefix}{n}", item) for n in range(size)})
            assert len(outcome.written) == size
            await cases.settle()  # the record of the publish follows the batch
            spent = counter.by_command(before, without={SWEEP_CHECKPOINTS})  # made sure of once a process
            assert spent.get("find", 0) == (size if ferret else 1), spent
            return sum(spent.values()) - spent.get("find", 0)

        assert await cost(2, "a", "x") == await cost(200, "b", "x") == 3
        assert await cost(200, "b", "y") == 3 + (-(-200 // UPDATES_PER_COMMAND)) - 1
    finally:
        await client.close()


async def test_a_change_that_raises_refuses_only_its_own_document(db) -> None:
    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published())

    def refuse(_: Tally | None) -> Tally:
        raise ValueError("rule says no")

    outcome = await cases.change_many({"ok": add_to("ok", "x"), "bad": refuse})
    assert set(outcome.written) == {"ok"} and isinstance(outcome.failed["bad"], ValueError)
    assert await db["tallies"].find_one({"_id": "bad"}) is None
    with pytest.raises(ValueError, match="rule says no"):
        await cases.change("bad", refuse)
    assert await cases.change("ok", add_to("ok", "x")) is None  # already there: no write


async def test_a_failed_publish_is_finished_by_the_sweep_and_carried_forward_in_order(db) -> None:
    published = Published()
    broken = Published()

    async def down(batch) -> None:
        raise ConnectionError("kafka unreachable")

    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, down)
    await cases.change("t-1", add_to("t-1", "first"))
    doc = await db["tallies"].find_one({"_id": "t-1"})
    assert doc["outbox"] == [{"event_id": "t-1:first"}] and doc["outbox_pending"] is True
    assert cases.backlog == 1  # what /metrics shows, without a store query

    cases.publish = broken  # the next change publishes what the failed one left, in order, before its own
    await cases.change("t-1", add_to("t-1", "second"))
    assert broken.events == ["t-1:first", "t-1:second"]
    assert cases.backlog == 0

    cases.publish = down
    await cases.change("t-2", add_to("t-2", "x"))
    assert cases.backlog == 1
    cases.publish = published
    assert await cases.sweep(older_than=datetime.now(UTC) - timedelta(minutes=1)) == 0  # too fresh
    assert cases.backlog == 1
    assert await cases.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert published.events == ["t-2:x"]
    assert cases.backlog == 0
    assert await cases.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 0


async def test_the_backlog_counts_what_waits_and_drops_what_another_process_published(db) -> None:
    """A process whose publishes fail counts those documents as its backlog; once another process's sweep
    has published them, this process's next look at them (its sweep, or a change) drops them."""

    async def down(batch) -> None:
        raise ConnectionError("kafka unreachable")

    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, down)
    await cases.change_many({f"b-{n}": add_to(f"b-{n}", "x") for n in range(3)})
    assert cases.backlog == 3
    other = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published())
    assert await other.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 3
    assert other.backlog == 0
    assert cases.backlog == 3  # it has not looked yet
    await cases.change("b-0", add_to("b-0", "x"))  # nothing to change, but it reads the markers
    assert cases.backlog == 2
    cases.publish = Published()
    assert await cases.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 0  # published already
    assert cases.backlog == 0


async def test_a_sweep_leaves_a_write_still_being_published_to_its_writer_then_looks_again(db, mongodb_url) -> None:
    """Under load a batch can take longer than the grace period between its write and its publish: the sweep
    then neither reads that document nor moves its window past it, so if the publish fails after all, the
    next sweep publishes the outbox."""
    from pymongo import AsyncMongoClient

    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        publishing, release = asyncio.Event(), asyncio.Event()

        async def slow_then_down(batch) -> None:
            publishing.set()
            await release.wait()
            raise ConnectionError("kafka unreachable")

        cases = Aggregates(client[db.name]["tallies"], client[db.name]["tally_claims"], CODEC, slow_then_down)
        writing = asyncio.ensure_future(cases.change("t-slow", add_to("t-slow", "x")))
        await publishing.wait()
        before = counter.sent.copy()
        # Not behind the writer either (it holds the document's lock until its publish ends).
        assert await asyncio.wait_for(cases.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)), 10) == 0
        spent = counter.sent - before
        assert not any(name == "tallies" for _, name in spent), dict(spent)  # the document was not read
        release.set()
        await writing  # its publish failed: the outbox stays in the document
        published = Published()
        cases.publish = published
        assert await cases.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
        assert published.events == ["t-slow:x"]
    finally:
        await client.close()


CRASHING_WRITER = textwrap.dedent("""
    import asyncio, sys
    from pymongo import AsyncMongoClient
    from common.aggregates import Aggregates
    from tests.foundation.test_aggregates_integration import CODEC, add_to

    async def hang(batch):
        print("publishing", flush=True)
        await asyncio.Event().wait()  # killed here: written, never published

    async def main():
        client = AsyncMongoClient(sys.argv[1], tz_aware=True)
        cases = Aggregates(client[sys.argv[2]]["tallies"], client[sys.argv[2]]["tally_claims"], CODEC, hang)
        await cases.change_many({f"k-{n}": add_to(f"k-{n}", "x") for n in range(5)})

    asyncio.run(main())
""")


async def test_a_process_killed_between_the_write_and_the_publish_has_its_events_swept_once(db, mongodb_url) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, mongodb_url, db.name],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None
    try:
        line = b""
        while line.strip() != b"publishing":  # (a log line may come first)
            line = await asyncio.to_thread(proc.stdout.readline)
            assert line, "the writer ended before publishing"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert await db["tallies"].count_documents({"outbox_pending": True}) == 5
    published = Published()
    sweeper = Aggregates(db["tallies"], db["tally_claims"], CODEC, published)
    later = datetime.now(UTC) + timedelta(seconds=1)
    assert await sweeper.sweep(older_than=later) == 5
    assert await sweeper.sweep(older_than=later) == 0
    assert sorted(published.events) == [f"k-{n}:x" for n in range(5)]
    for doc in await db["tallies"].find({}).to_list():
        assert await published_outbox(db, doc)


async def test_a_sweep_looks_up_claims_not_documents_and_reads_only_what_is_left(db, mongodb_url) -> None:
    """The sweep finds recent writes by their version claims (`outbox_minute`), so 60 documents written and
    published cost it no read of the documents themselves; one whose publish failed is the only one read,
    and a claim whose write never landed (its writer died between the two) leaves nothing to publish and
    does not hold the sweep back."""
    from pymongo import AsyncMongoClient

    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        counted = client[db.name]
        published = Published()
        cases = Aggregates(counted["tallies"], counted["tally_claims"], CODEC, published)
        await cases.change_many({f"t-{n}": add_to(f"t-{n}", "x") for n in range(60)})
        claims = await counted["tally_claims"].find({}).to_list()
        assert len(claims) == 60 and all(c["outbox_minute"] for c in claims)

        async def down(batch) -> None:
            raise ConnectionError("kafka unreachable")

        cases.publish = down
        await cases.change("t-left", add_to("t-left", "y"))
        assert await cases.claims.claim_many(
            [("t-never", 1)], marks={"t-never": {"outbox_minute": claims[0]["outbox_minute"]}}
        )
        cases.publish = published
        # A second process sweeps: it published none of these, so it asks the markers.
        sweeper = Aggregates(counted["tallies"], counted["tally_claims"], CODEC, published)
        later = datetime.now(UTC) + timedelta(seconds=1)
        before = counter.sent.copy()
        assert await sweeper.sweep(older_than=later) == 1
        reads = {key: n - before.get(key, 0) for key, n in counter.sent.items() if key[1] == "tallies"}
        assert reads.get(("find", "tallies"), 0) == 2, reads  # t-left and t-never, by id
        assert published.events[-1] == "t-left:y"
        assert await sweeper.sweep(older_than=later + timedelta(seconds=10)) == 0  # (overlapping 5 s)
        before = counter.sent.copy()
        assert await sweeper.sweep(older_than=later + timedelta(seconds=20)) == 0  # moved on past t-never
        assert not {key for key, n in counter.sent.items() if key[1] == "tallies" and n > before.get(key, 0)}
        # A process started later resumes where the sweeps got to, not a day back (1,442 minutes to look up).
        restarted = Aggregates(counted["tallies"], counted["tally_claims"], CODEC, published)
        before = counter.sent.copy()
        assert await restarted.sweep(older_than=later + timedelta(seconds=30)) == 0
        lookups = counter.sent[("find", "tally_claims")] - before.get(("find", "tally_claims"), 0)
        assert 0 < lookups <= 3, lookups
    finally:
        await client.close()


async def test_archived_documents_are_read_by_id_and_come_back_when_they_change(db) -> None:
    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published(), archive=db["tallies_archive"])
    await cases.change_many({f"t-{n}": add_to(f"t-{n}", "x") for n in range(4)})
    assert await cases.archive_where({"_id": {"$in": ["t-0", "t-1"]}}) == 2
    assert await db["tallies"].count_documents({}) == 2
    assert await db["tallies_archive"].count_documents({}) == 2
    written = await cases.change("t-0", add_to("t-0", "y"))  # read from the archive, back in the working set
    assert written is not None and written.created and written.value.items == ["x", "y"]
    assert (await db["tallies"].find_one({"_id": "t-0"}))["items"] == ["x", "y"]
    assert await db["tallies_archive"].find_one({"_id": "t-0"}) is None  # in one collection only
    assert await cases.archive_where({"_id": "t-0"}) == 1  # archived again: the old copy is overwritten
    assert (await db["tallies_archive"].find_one({"_id": "t-0"}))["items"] == ["x", "y"]


async def test_a_sweep_that_could_not_publish_looks_again_next_time(db) -> None:
    """The broker away for longer than the grace period: sweeps keep failing, and the first sweep after it
    is back publishes what was left (the sweep's window does not move past unpublished outboxes)."""

    async def down(batch) -> None:
        raise ConnectionError("kafka unreachable")

    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, down)
    await cases.change("t-1", add_to("t-1", "x"))
    now = datetime.now(UTC)
    for n in range(1, 4):  # sweeps 10, 20 and 30 s on, the broker still away
        assert await cases.sweep(older_than=now + timedelta(seconds=10 * n)) == 1
    published = Published()
    cases.publish = published
    assert await cases.sweep(older_than=now + timedelta(seconds=40)) == 1
    assert published.events == ["t-1:x"]


async def test_a_document_this_process_wrote_is_changed_again_without_reading_it(db, mongodb_url: str) -> None:
    from pymongo import AsyncMongoClient

    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        tallies = Aggregates(client[db.name]["tallies"], client[db.name]["tally_claims"], CODEC, Published())
        await tallies.change_many({f"t{n}": add_to(f"t{n}", "x") for n in range(5)})
        counter.counts.clear()
        outcome = await tallies.change_many({f"t{n}": add_to(f"t{n}", "y") for n in range(5)})
        assert len(outcome.written) == 5 and "find" not in counter.counts, dict(counter.counts)
        assert tallies.cache_hits == 5
    finally:
        await client.close()
    for n in range(5):
        assert (await db["tallies"].find_one({"_id": f"t{n}"}))["items"] == ["x", "y"]


async def test_what_another_process_wrote_since_is_not_lost_to_what_this_one_remembers(db) -> None:
    mine = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published())
    other = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published())
    await mine.change("t", add_to("t", "a"))
    await other.change("t", add_to("t", "b"))  # `mine` still remembers the document without "b"
    written = await mine.change("t", add_to("t", "c"))  # its claim is lost: it reads the document again
    assert written is not None and written.value.items == ["a", "b", "c"]
    assert (await db["tallies"].find_one({"_id": "t"}))["items"] == ["a", "b", "c"]
    # A remembered document older than the time limit is read again rather than trusted.
    quick = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published(), cache_ttl_s=0.0)
    await quick.change("u", add_to("u", "a"))
    await other.change("u", add_to("u", "b"))
    await quick.change("u", add_to("u", "c"))
    assert quick.cache_hits == 0
    assert (await db["tallies"].find_one({"_id": "u"}))["items"] == ["a", "b", "c"]


async def test_an_archived_document_is_forgotten_and_comes_back_whole(db) -> None:
    tallies = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published(), archive=db["tallies_archive"])
    await tallies.change("t", add_to("t", "a"))
    assert await tallies.archive_where({"_id": "t"}) == 1
    await tallies.change("t", add_to("t", "b"))
    assert (await db["tallies"].find_one({"_id": "t"}))["items"] == ["a", "b"]


async def test_documents_believed_new_are_not_read_and_one_that_exists_after_all_loses_nothing(
    db, mongodb_url: str
) -> None:
    from pymongo import AsyncMongoClient

    await Aggregates(db["tallies"], db["tally_claims"], CODEC, Published()).change("old", add_to("old", "a"))
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        tallies = Aggregates(client[db.name]["tallies"], client[db.name]["tally_claims"], CODEC, Published())
        ids = [f"n{n}" for n in range(5)]
        outcome = await tallies.change_many({i: add_to(i, "x") for i in ids}, new=ids)
        assert set(outcome.written) == set(ids) and "find" not in counter.counts, dict(counter.counts)
        counter.counts.clear()  # the same opening events again: this process remembers writing them
        outcome = await tallies.change_many({i: add_to(i, "x") for i in ids}, new=ids)
        assert outcome.unchanged == set(ids) and dict(counter.counts) == {}, dict(counter.counts)
        # A redelivered "opening" event: the document is there, its insert is refused, it is read alone.
        outcome = await tallies.change_many({"old": add_to("old", "b")}, new=["old"])
        assert outcome.written["old"].value.items == ["a", "b"]
    finally:
        await client.close()
    assert (await db["tallies"].find_one({"_id": "old"}))["items"] == ["a", "b"]


async def test_with_an_archive_age_recent_cases_are_never_looked_for_in_the_archive(db, mongodb_url: str) -> None:
    """Only documents left unchanged for `archive_after` are archived, so a case numbered within that age
    is created without a read and a lookup of it never asks the archive (which holds the whole history);
    an older case number is still looked for there, and comes back from it."""
    from pymongo import AsyncMongoClient

    from contracts.events import BUSINESS_TZ

    week = timedelta(days=7)
    today = datetime.now(BUSINESS_TZ).strftime("%Y%m%d")
    old_day = (datetime.now(BUSINESS_TZ) - timedelta(days=30)).strftime("%Y%m%d")
    recent, old = f"CQ-{today}-000001", f"CQ-{old_day}-000001"
    setup = Aggregates(db["tallies"], db["tally_claims"], CODEC, Published(), archive=db["tallies_archive"])
    await setup.change(old, add_to(old, "a"))
    assert await setup.archive_where({"_id": old}) == 1  # no age: anything finished may go

    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        aged = Aggregates(
            client[db.name]["tallies"],
            client[db.name]["tally_claims"],
            CODEC,
            Published(),
            archive=client[db.name]["tallies_archive"],
            archive_after=week,
        )
        assert not aged.may_be_archived(recent) and aged.may_be_archived(old)
        assert aged.may_be_archived(f"{old}:grant-1") and aged.may_be_archived("not-a-case-number")
        outcome = await aged.change_many({recent: add_to(recent, "a")}, new=[recent])
        assert recent in outcome.written and "find" not in counter.counts, dict(counter.counts)
        aged.forget(recent)
        counter.seconds.clear()
        assert await aged.current([recent, "CQ-20000101-000001"]) != {}
        asked = {collection for (command, collection) in counter.seconds if command == "find"}
        assert asked == {"tallies", "tallies_archive"}  # the old number only, in the archive
        aged.forget(recent)  # `current` remembered what it read
        counter.seconds.clear()
        await aged.current([recent])
        assert {c for (cmd, c) in counter.seconds if cmd == "find"} == {"tallies"}
        written = await aged.change(old, add_to(old, "b"))  # the old case comes back from the archive
        assert written is not None and written.value.items == ["a", "b"]
        # Changed just now: not archived however finished it is, until `archive_after` has passed.
        assert await aged.archive_where({"_id": {"$in": [recent, old]}}) == 0
        aged.archive_after = timedelta(0)
        assert await aged.archive_where({"_id": {"$in": [recent, old]}}) == 2
    finally:
        await client.close()


async def test_a_packed_outbox_is_stored_small_and_still_published_swept_and_carried_forward(db) -> None:
    """`pack_outbox`: the outbox is stored as one compressed value (FerretDB's lookups cost what the
    collection weighs), and the write path still publishes it, carries a failed one forward in order,
    sweeps it, archives the document and reads an outbox written before its collection packed."""
    published, broken = Published(), Published()

    async def down(batch) -> None:
        raise ConnectionError("kafka unreachable")

    plain = Aggregates(db["tallies"], db["tally_claims"], CODEC, down)
    await plain.change("t-old", add_to("t-old", "before"))  # unpacked, unpublished
    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, down, archive=db["tallies_archive"], pack_outbox=True)
    long_item = "家庭困难，需要帮助。" * 40
    for n in range(20):
        await cases.change("t-1", add_to("t-1", f"{n}:{long_item}"))
    doc = await db["tallies"].find_one({"_id": "t-1"})
    assert doc["outbox"] == [] and isinstance(doc["outbox_packed"], bytes) and doc["outbox_pending"] is True
    unpacked = {**doc, "outbox": [{"event_id": f"t-1:{n}:{long_item}"} for n in range(20)], "outbox_packed": None}
    assert len(bson.encode(doc)) < len(bson.encode(unpacked)) * 0.6  # the items themselves stay as they are

    cases.publish = broken  # carried forward in order, the unpacked one too
    await cases.change("t-1", add_to("t-1", "last"))
    await cases.change("t-old", add_to("t-old", "after"))
    assert broken.events == [
        *(f"t-1:{n}:{long_item}" for n in range(20)),
        "t-1:last",
        "t-old:before",
        "t-old:after",
    ]
    cases.publish = down
    await cases.change("t-2", add_to("t-2", "x"))
    cases.publish = published
    assert await cases.sweep(older_than=datetime.now(UTC) + timedelta(seconds=1)) == 1
    assert published.events == ["t-2:x"]
    assert await cases.archive_where({"_id": "t-2"}) == 1
    archived = await db["tallies_archive"].find_one({"_id": "t-2"})
    assert archived["outbox"] == [] and archived["outbox_packed"] is None  # published: nothing left to carry
    written = await cases.change("t-2", add_to("t-2", "y"))
    assert written is not None and written.value.outbox == [{"event_id": "t-2:y"}]  # not x again


class Ticket(BaseModel):
    id: str
    status: str = "open"
    outbox: list[dict[str, Any]] = []


TICKETS = Codec(
    load=lambda doc: Ticket(id=doc["_id"], status=doc.get("status", "open"), outbox=doc.get("outbox", [])),
    dump=lambda t: {"_id": t.id, "status": t.status, "outbox": t.outbox},
)
DONE = {"status": {"$in": ["closed", "merged"]}}


def set_status(doc_id: str, status: str):
    return lambda current: (current or Ticket(id=doc_id)).model_copy(update={"status": status})


class Filters(CommandListener):
    """The filters of the `find` commands a client sends to one collection."""

    def __init__(self, collection: str) -> None:
        self.collection = collection
        self.seen: list[dict[str, Any]] = []

    def started(self, event) -> None:
        if event.command_name == "find" and event.command.get("find") == self.collection:
            self.seen.append(dict(event.command.get("filter", {})))

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


async def test_the_archiver_finds_finished_documents_by_the_write_path_s_stamp(db, mongodb_url: str) -> None:
    """The write path stamps each document with whether its `finished` filter matches, and the archiver
    asks for the stamp, one equality a day on an indexed field (FerretDB decoded every open document for
    the filter's `$in`). Documents stored before the stamp existed are archived by the filter until none
    is left; then the checkpoint says so, and no process asks the filter again."""
    from pymongo import AsyncMongoClient

    from contracts.events import BUSINESS_TZ

    tickets = Aggregates(db["tickets"], db["ticket_claims"], TICKETS, archive=db["tickets_archive"], finished=DONE)
    await tickets.change_many({"T1": set_status("T1", "open"), "T2": set_status("T2", "closed")})
    today = datetime.now(BUSINESS_TZ).date()
    stored = {d["_id"]: d["finished"] for d in await db["tickets"].find({}, {"finished": 1}).to_list()}
    assert stored == {"T1": None, "T2": today.isoformat()}  # the day of the write that finished it
    old = datetime.now(UTC) - timedelta(days=30)
    await db["tickets"].insert_many(  # as an earlier version of the write path left them: no stamp
        [
            {"_id": "L-closed", "status": "closed", "outbox": [], "version": 1, "updated_at": old},
            {"_id": "L-open", "status": "open", "outbox": [], "version": 1, "updated_at": old},
        ]
    )

    assert await tickets.archive_finished() == 1  # the unstamped finished one, by the filter
    assert await db["tickets_archive"].find_one({"_id": "L-closed"}) is not None
    assert await db["tickets"].find_one({"_id": "L-open"}) is not None  # unfinished: stays
    assert await tickets.archive_finished() == 1  # none left unstamped: the checkpoint, then the stamp
    assert await db["tickets_archive"].find_one({"_id": "T2"}) is not None
    assert await tickets.archive_finished() == 0
    assert "finished_1" in await db["tickets"].index_information()

    filters = Filters("tickets")
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[filters])
    try:
        later = Aggregates(  # another process, or this one restarted
            client[db.name]["tickets"],
            client[db.name]["ticket_claims"],
            TICKETS,
            archive=client[db.name]["tickets_archive"],
            finished=DONE,
        )
        await later.change_many({"T1": set_status("T1", "merged"), "L-open": set_status("L-open", "closed")})
        filters.seen.clear()
        assert await later.archive_finished() == 2  # finished since: stamped by the write that finished them
        assert await later.archive_finished() == 0
        # One equality a day, from the checkpoint to the archive age's day (today, with no age): the
        # checkpoint began at yesterday and the first rounds moved it past that day, which held nothing.
        assert filters.seen == [{"finished": today.isoformat()}] * 2, filters.seen
        checkpoint = await db[SWEEP_CHECKPOINTS].find_one({"_id": "archived-from:tickets"})
        assert checkpoint is not None and checkpoint["day"] == today.isoformat() and not checkpoint["unstamped"]
    finally:
        await client.close()
    assert await db["tickets"].count_documents({}) == 0
    assert await db["tickets_archive"].count_documents({}) == 4


async def test_with_an_archive_age_the_archiver_asks_only_the_days_it_has_reached(db) -> None:
    """Each day from the checkpoint to the archive age's day is asked once; days emptied and past that
    age are passed over for good; a document finished today is not asked for until its day comes."""
    from contracts.events import BUSINESS_TZ

    today = datetime.now(BUSINESS_TZ).date()
    days_ago = lambda n: (today - timedelta(days=n)).isoformat()  # noqa: E731
    await db[SWEEP_CHECKPOINTS].insert_one({"_id": "archived-from:tickets", "day": days_ago(12), "unstamped": False})
    old = datetime.now(UTC) - timedelta(days=10)
    await db["tickets"].insert_many(
        [
            {"_id": "old", "status": "closed", "outbox": [], "version": 1, "updated_at": old, "finished": days_ago(10)},
            {"_id": "new", "status": "closed", "outbox": [], "version": 1, "updated_at": datetime.now(UTC)}
            | {"finished": today.isoformat()},
        ]
    )
    tickets = Aggregates(
        db["tickets"],
        db["ticket_claims"],
        TICKETS,
        archive=db["tickets_archive"],
        archive_after=timedelta(days=7),
        finished=DONE,
    )
    assert await tickets.archive_finished() == 1
    assert [d["_id"] for d in await db["tickets_archive"].find({}, {"_id": 1}).to_list()] == ["old"]
    checkpoint = await db[SWEEP_CHECKPOINTS].find_one({"_id": "archived-from:tickets"})
    assert checkpoint["day"] == days_ago(7)  # the age's own day may still get documents old enough
    assert await tickets.archive_finished() == 0
    assert await db["tickets"].find_one({"_id": "new"}) is not None


async def test_a_batch_does_not_wait_for_the_record_of_its_publish_and_concurrent_records_go_together(db) -> None:
    """The record that an outbox was published is stored off the batch's path: the change returns while it
    is on its way, this process knows without it, and the records of batches ending meanwhile share the
    next insert (group commit). `settle` waits for them (a service's shutdown does)."""
    published = Published()
    cases = Aggregates(db["tallies"], db["tally_claims"], CODEC, published)
    held = asyncio.Event()
    inserts: list[int] = []
    real_insert = cases.published.insert_many

    async def slow_insert(documents, **kwargs):
        inserts.append(len(documents))
        await held.wait()
        return await real_insert(documents, **kwargs)

    cases.published.insert_many = slow_insert  # type: ignore[method-assign,assignment]
    first = await asyncio.wait_for(cases.change("m-0", add_to("m-0", "x")), timeout=10)
    assert first is not None and published.events == ["m-0:x"]  # returned with its record still held
    assert await db["tallies_published_claims"].count_documents({}) == 0
    rest = await asyncio.gather(*(cases.change(f"m-{n}", add_to(f"m-{n}", "x")) for n in range(1, 6)))
    assert all(w is not None for w in rest) and cases.backlog == 0
    await asyncio.sleep(0.05)  # their records are handed to the inserts
    assert inserts == [1]  # the five records wait behind the first insert
    held.set()
    await asyncio.wait_for(cases.settle(), timeout=10)
    assert inserts == [1, 5]
    stored = {d["_id"] for d in await db["tallies_published_claims"].find({}).to_list()}
    assert stored == {f"m-{n}@1" for n in range(6)}
    # This process's next change drops the published entries without asking the store.
    again = await cases.change("m-0", add_to("m-0", "y"))
    assert again is not None and published.events[-1] == "m-0:y"
    assert (await db["tallies"].find_one({"_id": "m-0"}))["outbox"] == [{"event_id": "m-0:y"}]
