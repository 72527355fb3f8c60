"""Relief's batch intake against the real store: a batch costs a bounded number of store commands whatever
its size, and two relief processes taking the same records create each entitlement once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from types import SimpleNamespace

import pytest
from pymongo import AsyncMongoClient

from common.aggregates import SWEEP_CHECKPOINTS
from common.store import CommandCounter, serves_queries_from_indexes
from contracts.events import BUSINESS_TZ
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from services.relief.app import load_standards_book
from services.relief.domain.registry import hash_id_card
from services.relief.handlers import contract_topics, take_records
from services.relief.service import Relief
from services.relief.store import ReliefStore
from tests.relief.conftest import help_requested, id_card, relief_settings
from tests.support.events import dispatched

pytestmark = pytest.mark.integration
NEEDS = ("temp_assist_major", "temp_assist_epidemic")  # two entitlements per case


class Published:
    """Stands in for the broker: records what was published (publishing is not a store command)."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    async def publish(self, message, **kwargs) -> None:
        self.events.append(message.model_dump(mode="json"))


def records(cases: list[str], *, first: int = 0) -> list[SimpleNamespace]:
    """Each case's help request and dispatch, as the batch consumer receives them (both topics mixed)."""
    out: list[SimpleNamespace] = []
    for n, case in enumerate(cases):
        help_ = help_requested(case, *NEEDS, id_card=id_card(first + n), household_status="dibao")
        for topic, event in ((HELP_REQUESTED_TOPIC, help_), (CASE_LIFECYCLE_TOPIC, dispatched(case, needs=NEEDS))):
            out.append(
                SimpleNamespace(
                    topic=topic,
                    partition=0,
                    offset=len(out),
                    key=case.encode(),
                    headers=[],
                    value=event.model_dump_json().encode(),
                )
            )
    return out


DAY = datetime.now(BUSINESS_TZ).strftime("%Y%m%d")


def relief_on(db, settings, broker) -> Relief:
    store = ReliefStore(db, archive_after=timedelta(seconds=settings.archive_after_s))  # as the service builds it
    return Relief(store=store, book=load_standards_book(settings), broker=broker, id_hash_salt="salt")


async def test_a_batch_costs_a_bounded_number_of_store_commands_whatever_its_size(db, db_name, mongodb_url):
    """A batch of 2 cases and one of 100 (each with its help request and dispatch, registry matches for
    some, two entitlements each) cost the same store commands; so does a redelivered batch (nothing new)."""
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    await ReliefStore(db).ensure_indexes()
    await db["registry"].insert_many(
        [
            {
                "_id": f"R-{n}",
                "id_card_hash": hash_id_card(id_card(n), "salt"),
                "district": "500103",
                "area": "urban",
                "categories": ["dibao"],
                "approved_on": "2020-01-01",
                "ended_on": None,
            }
            for n in range(0, 200, 3)
        ]
    )
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    published = Published()
    try:
        relief = relief_on(client[db.name], settings, published)

        async def cost(batch: list[SimpleNamespace]) -> dict[str, int]:
            """Commands by name, without the sweep's checkpoint each write path makes sure of once a process."""
            before = counter.sent.copy()
            assert await take_records(relief, batch, topics=contract_topics(settings)) == []
            return counter.by_command(before, without={SWEEP_CHECKPOINTS})

        # Numbered today (received on the reference data's day): too recent to be looked for in the archive.
        small = await cost(records([f"CQ-{DAY}-1{n:05d}" for n in range(2)]))
        batch = records([f"CQ-{DAY}-2{n:05d}" for n in range(100)], first=2)
        large = await cost(batch)
        # finds: the cases, the registry, the standards, the cases (write path): four on MongoDB, one per
        # document read on FerretDB (`common.store.find_by`: it decodes the whole collection for `$in`); the
        # entitlements are new, inserted unread (their collection holds every grant still to decide);
        # inserts: the applicants (insert-only), entitlements claim, write, published marker; cases claim, write
        ferret = not await serves_queries_from_indexes(db)
        reads = small.pop("find"), large.pop("find")
        assert small == large == {"insert": 6}, (small, large)
        if ferret:
            assert reads[0] <= 4 * 2 + 1 and reads[1] <= 4 * 100 + 1, reads
        else:
            assert reads == (4, 4), reads
        # Redelivered: reads only (the outboxes are known published, the cases' help parts known), writes nothing.
        again = await cost(batch)
        assert set(again) == {"find"} and again["find"] <= (5 * 102 if ferret else 5), again
        assert await db["applicants"].count_documents({}) == 102
    finally:
        await client.close()
    assert await db["entitlements"].count_documents({}) == 2 * 102
    assert len({e["event_id"] for e in published.events}) == 2 * 102
    case = await db["cases"].find_one({"_id": f"CQ-{DAY}-200003"})
    assert sorted(case["evaluation"]["rules"]) == ["P5.2a", "P5.2c"]
    matched = await db["entitlements"].find_one({"_id": f"CQ-{DAY}-200001:P5.2a"})  # id_card(3) -> R-3
    assert matched["recipient_id"] == "R-3"


async def test_two_relief_processes_taking_the_same_records_create_each_entitlement_once(db, db_name, mongodb_url):
    """Two Relief objects (two processes: their own write paths and memory) take the same batch at once,
    and again: one entitlement per (case, rule), one proposal event per entitlement (publishing is at
    least once, so the same event may go out twice, never two different ones)."""
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    await ReliefStore(db).ensure_indexes()
    cases = [f"CQ-20210215-3{n:05d}" for n in range(40)]
    batch = records(cases)
    published = [Published(), Published()]
    processes = [relief_on(db, settings, p) for p in published]
    for _ in range(2):
        halves = (batch, list(reversed(batch)))  # the second sees the records in another order
        results = await asyncio.gather(
            *(take_records(r, b, topics=contract_topics(settings)) for r, b in zip(processes, halves, strict=True))
        )
        assert results == [[], []]
    docs = await db["entitlements"].find({"case_id": {"$in": cases}}).to_list(None)
    assert sorted(d["_id"] for d in docs) == sorted(f"{c}:{rule}" for c in cases for rule in ("P5.2a", "P5.2c"))
    assert all(d["version"] == 1 and len(d["decisions"]) == 1 for d in docs)
    events = [e for p in published for e in p.events]
    assert {(e["grant_id"], e["type"]) for e in events} == {
        (d["_id"], "grant.proposed" if d["status"] == "proposed" else "grant.rejected") for d in docs
    }
    assert len({e["event_id"] for e in events}) == len(docs)  # one event per entitlement
    for case in cases:
        stored = await db["cases"].find_one({"_id": case})
        assert stored["help"] and stored["dispatch"] and sorted(stored["evaluation"]["rules"]) == ["P5.2a", "P5.2c"]


async def test_a_batch_holding_each_new_case_s_dispatch_before_its_call_reads_none_of_them(db, db_name, mongodb_url):
    """A batch of two topics may hold a case's dispatch before its help request (a lingering consumer often
    takes both at once): the cases are new all the same, written without being read, and evaluated."""
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    await ReliefStore(db).ensure_indexes()
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        relief = relief_on(client[db.name], settings, Published())
        cases = [f"CQ-{DAY}-4{n:05d}" for n in range(10)]
        batch = records(cases, first=300)
        swapped = [record for pair in zip(batch[1::2], batch[0::2], strict=True) for record in pair]
        assert [r.topic for r in swapped[:2]] == [CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC]
        assert await take_records(relief, swapped, topics=contract_topics(settings)) == []
        assert counter.sent[("find", "cases")] == 0, counter.sent
    finally:
        await client.close()
    evaluated = await db["cases"].count_documents({"_id": {"$in": cases}, "evaluation": {"$ne": None}})
    assert evaluated == len(cases)
