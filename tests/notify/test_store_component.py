"""Notify's case documents through the shared write path: several notify instances at once, and a batch
of events costing a bounded number of store commands whatever its size."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient

from common.store import CommandCounter, serves_queries_from_indexes
from contracts.events.hotline import CallbackRecorded
from services.notify.clockwork import Clockwork
from services.notify.domain import case as case_rules
from services.notify.outbox import Outbox
from services.notify.store import NotifyStore
from tests.support.events import dispatched, new_case_id, resolved, signed

pytestmark = pytest.mark.component


async def test_two_notify_instances_applying_events_of_one_case_lose_none(runtime) -> None:
    """Each instance serialises its own writers in memory; between instances only the version claims
    decide, and the loser reads again: every event is applied once."""
    notify = runtime.service
    other = Clockwork(notify.store, notify.policy, notify.outbox)  # another process: locks of its own
    cid, now = new_case_id(), datetime.now(UTC)

    async def apply(clockwork: Clockwork, event) -> None:
        await clockwork.record(cid, str(event.event_id), lambda s: case_rules.apply(s, event, notify.policy))

    await apply(notify.clockwork, dispatched(cid, at=now - timedelta(minutes=30), sla_class="emergency"))
    events = [
        signed(cid, at=now - timedelta(minutes=20)),
        resolved(cid, at=now - timedelta(minutes=10)),
        CallbackRecorded(case_id=cid, operator_id="op", satisfaction="satisfied"),
    ]
    await asyncio.gather(
        *(apply(cw, e) for cw, e in zip([other, notify.clockwork, other], events, strict=True)),
        *(apply(cw, e) for cw, e in zip([notify.clockwork, other, notify.clockwork], events, strict=True)),
    )  # each event twice, once per instance
    doc = await notify.store.load(cid)
    assert doc["status"] == "resolved" and doc["m_sat"] == 1 and doc["version"] == 4
    assert len(doc["applied"]) == 4


async def test_a_batch_of_dispatches_costs_the_same_store_commands_for_5_cases_as_for_50(runtime, mongodb_url) -> None:
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        notify = runtime.service
        store = NotifyStore(
            client[runtime.settings.database_name],
            bucket_s=runtime.settings.timer_bucket_s,
            archive_after=timedelta(seconds=runtime.settings.archive_after_s),  # as the service builds it
        )
        clockwork = Clockwork(store, notify.policy, Outbox(store, runtime.settings))
        now = datetime.now(UTC)
        ferret = not await serves_queries_from_indexes(store.db)

        async def cost(cases: int) -> dict[str, int]:
            steps = []
            for _ in range(cases):
                event = dispatched(new_case_id(), at=now, sla_class="emergency")
                steps.append(
                    (event.case_id, str(event.event_id), lambda s, e=event: case_rules.apply(s, e, notify.policy))
                )
            before = dict(counter.counts)
            assert await clockwork.record_many(steps) == {}
            spent = {k: v - before.get(k, 0) for k, v in counter.counts.items()}
            # reads: one `$in` on MongoDB, one equality query per case on FerretDB (`common.store.find_by`)
            assert spent.get("find", 0) <= (cases + 1 if ferret else 2), spent
            return {k: v for k, v in spent.items() if k != "find" and v}

        # The texts' first attempts are due now, by the wall clock, in the bucket of the moment: a bucket
        # beginning between the runs below would cost one registration more. Start early in a bucket.
        left = runtime.settings.timer_bucket_s - datetime.now(UTC).timestamp() % runtime.settings.timer_bucket_s
        if left < 20:
            await asyncio.sleep(left + 0.1)
        await cost(1)  # the timer buckets' first use registers them
        small, large = await cost(5), await cost(50)
        assert sum(small.values()) == sum(large.values()), (small, large)
        # claim, write, mark published; texts and their first attempts; one insert per timer bucket
        # the cases' warnings, breaches and escalations fall in (six or so with 60 s buckets)
        assert sum(large.values()) <= 16, large
    finally:
        await client.close()
