"""The durable timer wheel on the real store, and the clockwork under concurrent events for one case."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts.events.hotline import CallbackRecorded
from services.notify import sweeper
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
    # The resolution cancelled every pending timer of the case: none is scheduled, and none fires. (Those
    # still staged when it came stay stored until they are due, and are dropped unfired then.)
    assert [s for s in doc["scheduled"]] == []
    await sweeper.sweep_once(runtime, now=now + timedelta(days=1))
    assert await notify.store.sla_events.count_documents({"case_id": cid}) == 0
    assert await notify.store.sla_timers.pending() == 0


async def _staging_rounds(wheel: TimerWheel) -> dict[str, int]:
    names = [n for n in await wheel.db.list_collection_names() if n.startswith(f"{wheel.prefix}_staged_")]
    return {n: await wheel.db[n].count_documents({}) for n in names}


async def test_far_timers_are_staged_together_and_moved_into_their_own_buckets_before_they_are_due(db) -> None:
    wheel, now = TimerWheel(db, "t", bucket_s=60, stage_after_s=3600), datetime.now(UTC)
    near = Timer("near", now + timedelta(minutes=10), {"k": "near"})
    far = [Timer("far-1", now + timedelta(hours=8), {"k": 1}), Timer("far-2", now + timedelta(days=5), {"k": 2})]
    placed = await wheel.schedule([near, *far], now)
    # Only the near timer's bucket is written; both far timers sit in one staging round, whatever their buckets.
    assert [d["_id"] for d in await wheel.registry.find({}).to_list(None)] == [placed["near"]]
    assert list((await _staging_rounds(wheel)).values()) == [2]
    assert await wheel.pending() == 3
    assert await wheel.move_staged(now) == 0  # the round is still being written
    assert await wheel.move_staged(now + timedelta(seconds=91)) == 2
    assert await _staging_rounds(wheel) == {}  # a moved round is dropped whole
    assert await wheel.pending() == 3
    fired = await wheel.due(now + timedelta(days=6), 10)
    assert [(t.id, t.bucket, t.staged, t.payload) for t in fired] == [
        ("near", placed["near"], False, {"k": "near"}),
        ("far-1", placed["far-1"], True, {"k": 1}),
        ("far-2", placed["far-2"], True, {"k": 2}),
    ]


async def test_a_sweep_asking_about_a_time_a_staged_timer_is_due_by_moves_the_staging_first(db) -> None:
    wheel, now = TimerWheel(db, "t", bucket_s=60, stage_after_s=3600), datetime.now(UTC)
    await wheel.due(now, 10)  # this process's first sweep moves (nothing yet)
    await wheel.schedule([Timer("far", now + timedelta(hours=2), {})], now)
    assert await wheel.due(now + timedelta(seconds=10), 10) == []  # moved a moment ago: not again
    assert [t.id for t in await wheel.due(now + timedelta(hours=3), 10)] == ["far"]


async def test_staging_needs_time_to_move_a_round_before_a_staged_timer_is_due(db) -> None:
    with pytest.raises(ValueError, match="stage_after_s"):
        TimerWheel(db, "t", stage_after_s=60)
