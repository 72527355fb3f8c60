"""No call is ever lost: the outbox, the direct publish and the relay (component; TestKafkaBroker)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from services.hotline import handlers
from services.hotline import outbox as outbox_module
from tests.hotline.conftest import Harness
from tests.support.events import help_requested
from tests.support.waiting import eventually

pytestmark = pytest.mark.component


def relayed_ids(harness: Harness) -> list[str]:
    return [b["case_id"] for b in harness.published if b["type"] == "hotline.help_requested"]


async def test_calls_taken_while_kafka_is_down_are_stored_and_relayed_in_order(harness: Harness) -> None:
    harness.runtime.kafka_connected.clear()
    ids = [(await harness.take())["case_id"] for _ in range(4)]
    assert harness.published == [] and await harness.hotline.outbox.pending_count() == 4
    harness.runtime.kafka_connected.set()
    assert await harness.hotline.publisher.drain_once() == 4
    assert relayed_ids(harness) == ids
    assert await harness.hotline.outbox.pending_count() == 0


async def test_a_new_call_never_overtakes_the_backlog(harness: Harness) -> None:
    harness.runtime.kafka_connected.clear()
    older = (await harness.take())["case_id"]
    harness.runtime.kafka_connected.set()  # Kafka is back, but the relay has not drained yet
    newer = await harness.take()
    assert newer["published"] is False  # direct publish only when the backlog is empty
    await harness.hotline.publisher.drain_once()
    assert relayed_ids(harness) == [older, newer["case_id"]]
    assert (await harness.take())["published"] is True  # backlog empty again: straight to Kafka


async def test_a_failed_direct_publish_leaves_the_call_to_the_relay(harness: Harness, monkeypatch) -> None:
    real = outbox_module.publish_event
    calls = 0

    async def flaky(broker: Any, event: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KafkaConnectionError("broker down")
        await real(broker, event, **kwargs)

    monkeypatch.setattr(outbox_module, "publish_event", flaky)
    accepted = await harness.take()
    assert accepted["published"] is False and harness.published == []
    entry = await harness.db["outbox"].find_one({"case_id": accepted["case_id"]})
    assert entry and entry["state"] == "queued"
    await harness.hotline.publisher.drain_once()
    assert relayed_ids(harness) == [accepted["case_id"]]


async def test_the_relay_keeps_order_when_kafka_fails_midway(harness: Harness, monkeypatch) -> None:
    harness.runtime.kafka_connected.clear()
    ids = [(await harness.take())["case_id"] for _ in range(3)]
    harness.runtime.kafka_connected.set()
    real = harness.broker.publish
    calls = 0

    async def fails_second(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise KafkaConnectionError("broker went away")
        return await real(*args, **kwargs)

    monkeypatch.setattr(harness.broker, "publish", fails_second)
    with pytest.raises(KafkaConnectionError):
        await harness.hotline.publisher.drain_once()
    assert relayed_ids(harness) == ids[:1]  # stopped at the failure, nothing after it went out
    assert await harness.hotline.outbox.pending_count() == 2  # the acknowledged one left the outbox
    await harness.hotline.publisher.drain_once()
    assert relayed_ids(harness) == ids


async def test_an_entry_abandoned_by_a_dead_process_is_taken_over(harness: Harness) -> None:
    event = help_requested("CQ-20260215-000077")
    # The process stored the call, claimed it for a direct publish, then died before anything else.
    await harness.hotline.store.claim_intake(event)
    entry = await harness.hotline.outbox.append(event, direct=True)
    assert await harness.hotline.publisher.drain_once() == 0  # still within the takeover window
    await harness.db["outbox"].update_one(
        {"_id": entry["_id"]}, {"$set": {"claimed_at": datetime.now(UTC) - timedelta(minutes=5)}}
    )
    assert await harness.hotline.publisher.drain_once() == 1
    assert relayed_ids(harness) == [event.case_id]
    assert await harness.hotline.outbox.pending_count() == 0


async def test_the_relay_loop_publishes_as_soon_as_kafka_is_back(harness: Harness) -> None:
    harness.runtime.kafka_connected.clear()
    relay = asyncio.create_task(handlers.outbox_relay(harness.runtime))  # the app's background loop
    try:
        ids = [(await harness.take())["case_id"] for _ in range(3)]
        assert harness.published == []
        harness.runtime.kafka_connected.set()
        await eventually(lambda: relayed_ids(harness) == ids, timeout=10, what="relayed calls")
    finally:
        relay.cancel()
        await asyncio.gather(relay, return_exceptions=True)


async def test_a_case_number_taken_by_another_process_is_skipped(harness: Harness) -> None:
    from services.hotline.domain import case_day

    today = case_day(datetime.now(UTC))
    # Another hotline process (same store) recorded numbers 1-3 today; this one still counts from 1.
    harness.hotline.case_numbers._next[today] = 1
    for seq in (1, 2, 3):
        await harness.hotline.store.claim_intake(help_requested(f"CQ-{today}-{seq:06d}"))
    accepted = await harness.take()
    assert accepted["case_id"] == f"CQ-{today}-000004"


async def test_a_restarted_process_counts_on_from_the_stored_floor(harness: Harness) -> None:
    from services.hotline.intake import CaseNumbers

    ids = [(await harness.take())["case_id"] for _ in range(CaseNumbers.FLOOR_STEP + 1)]
    fresh = CaseNumbers(harness.hotline.store)  # what a restarted process starts with
    assert await fresh.next(datetime.now(UTC)) > ids[CaseNumbers.FLOOR_STEP - 1]


async def test_concurrent_calls_get_distinct_case_numbers(harness: Harness) -> None:
    results = await asyncio.gather(*(harness.take() for _ in range(20)))
    ids = [r["case_id"] for r in results]
    assert len(set(ids)) == 20
    assert await harness.db["intakes"].count_documents({}) == 20
