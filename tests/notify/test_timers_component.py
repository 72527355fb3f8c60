"""The durable timer wheel on the real store, and the clockwork under concurrent events for one case."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts.events.hotline import CallbackRecorded
from services.notify.domain import case as case_rules
from services.notify.store import TimerWheel
from services.notify.timers import Timer
from tests.support.events import dispatched, new_case_id, resolved, signed

pytestmark = pytest.mark.component


async def test_due_finds_only_timers_whose_time_has_come_earliest_first(db) -> None:
    wheel, now = TimerWheel(db, "t", bucket_s=60), datetime.now(UTC)
    await wheel.schedule(
        [
            Timer("later", now + timedelta(minutes=10), {}),
            Timer("b", now - timedelta(seconds=5), {}),
            Timer("a", now - timedelta(minutes=3), {}),
        ],
        now,
    )
    assert [t.id for t in await wheel.due(now, 10)] == ["a", "b"]
    assert [t.id for t in await wheel.due(now, 1)] == ["a"]
    assert [t.id for t in await wheel.due(now + timedelta(minutes=11), 10)] == ["a", "b", "later"]


async def test_a_late_timer_goes_into_the_current_bucket_and_empty_past_buckets_are_dropped(db) -> None:
    wheel, now = TimerWheel(db, "t", bucket_s=60), datetime.now(UTC)
    placed = await wheel.schedule([Timer("late", now - timedelta(hours=2), {})], now)
    assert placed["late"] == wheel.bucket_of(now, now)
    [timer] = await wheel.due(now, 10)
    await wheel.done(timer)
    assert await wheel.reap(now + timedelta(minutes=10)) == 1
    assert await wheel.registry.count_documents({}) == 0 and await wheel.pending() == 0


async def test_scheduling_the_same_timer_twice_stores_it_once_and_cancel_removes_it(db) -> None:
    wheel, now = TimerWheel(db, "t", bucket_s=60), datetime.now(UTC)
    timer = Timer("x", now + timedelta(seconds=30), {"k": 1})
    placed = await wheel.schedule([timer], now)
    await wheel.schedule([timer], now)
    assert await wheel.pending() == 1
    await wheel.cancel(placed.items())
    assert await wheel.pending() == 0


async def test_concurrent_events_of_one_case_are_all_applied(runtime) -> None:
    cid, now = new_case_id(), datetime.now(UTC)
    notify = runtime.service

    async def apply(event) -> None:
        await notify.clockwork.record(cid, str(event.event_id), lambda s: case_rules.apply(s, event, notify.policy))

    await apply(dispatched(cid, at=now - timedelta(minutes=30), sla_class="emergency"))
    await asyncio.gather(
        apply(signed(cid, at=now - timedelta(minutes=20))),
        apply(resolved(cid, at=now - timedelta(minutes=10))),
        apply(CallbackRecorded(case_id=cid, operator_id="op", satisfaction="satisfied")),
    )
    doc = await notify.store.load(cid)
    assert doc["status"] == "resolved" and doc["m_sat"] == 1 and doc["version"] == 4
    assert doc["dept_clocks"][0]["m_sign_on_time"] == 1
    # The resolution cancelled every pending timer of the case.
    assert [s for s in doc["scheduled"]] == [] and await notify.store.sla_timers.pending() == 0
