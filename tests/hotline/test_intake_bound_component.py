"""Intake answers quickly or not at all (P6.2): within `accept_timeout_s` a call is accepted with its case
number, or refused with 503 and Retry-After, and then nothing of it is stored, so the operator's retry
never makes a second case; the answer never waits for Kafka past the bound."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from services.hotline import outbox as outbox_module
from tests.hotline.conftest import Harness, call
from tests.hotline.test_open311_component import form

pytestmark = pytest.mark.component


async def post(harness: Harness, key: str | None = None) -> Any:
    headers = harness.headers()
    if key is not None:
        headers["Idempotency-Key"] = key
    return await harness.client.post("/api/v1/help-requests", json=call(), headers=headers)


def bound(harness: Harness, seconds: float) -> None:
    harness.hotline.settings = harness.hotline.settings.model_copy(update={"accept_timeout_s": seconds})


async def stored(harness: Harness) -> dict[str, int]:
    return {
        name: await harness.db[name].count_documents({})
        for name in ("intakes", "outbox", "idempotency_keys", "caller_slots")
    }


async def test_a_call_that_waits_past_the_bound_for_its_turn_is_refused_and_nothing_is_stored(
    harness: Harness,
) -> None:
    bound(harness, 0.3)
    harness.hotline.slots = asyncio.Semaphore(1)
    await harness.hotline.slots.acquire()  # every turn is taken
    before = await stored(harness)
    started = time.monotonic()
    refused = await post(harness, "form-busy-1")
    waited = time.monotonic() - started
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1" and refused.json()["code"] == "intake_busy"
    assert "未保存" in refused.json()["message_zh"] and "nothing was stored" in refused.json()["message_en"]
    assert 0.3 <= waited < 1.5
    assert await stored(harness) == before and harness.published == []

    harness.hotline.slots.release()
    again = await post(harness, "form-busy-1")  # the operator's retry with the same form
    assert again.status_code == 201 and again.json()["replayed"] is False  # a new call, not a replay
    assert await harness.db["intakes"].count_documents({}) == before["intakes"] + 1


async def test_a_call_past_the_bound_before_its_record_is_written_is_refused_and_its_key_let_go(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound(harness, 0.2)
    store = harness.hotline.store
    reserve = store.reserve_idempotency_key

    async def slow_reserve(key: str, case_id: str) -> str | None:
        held = await reserve(key, case_id)
        await asyncio.sleep(0.4)  # the store is slow: the bound passes before the intake record
        return held

    monkeypatch.setattr(store, "reserve_idempotency_key", slow_reserve)
    refused = await post(harness, "form-slow-2")
    assert refused.status_code == 503, refused.text
    counts = await stored(harness)
    assert counts["intakes"] == counts["outbox"] == counts["idempotency_keys"] == 0
    monkeypatch.setattr(store, "reserve_idempotency_key", reserve)
    assert (await post(harness, "form-slow-2")).status_code == 201


async def test_the_answer_does_not_wait_for_a_slow_kafka_past_the_bound(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound(harness, 0.5)
    real = outbox_module.publish_event

    async def slow(broker: Any, event: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.8)
        await real(broker, event, **kwargs)

    monkeypatch.setattr(outbox_module, "publish_event", slow)
    started = time.monotonic()
    accepted = await post(harness)
    assert accepted.status_code == 201 and accepted.json()["published"] is False
    assert time.monotonic() - started < 0.8  # answered before Kafka's ack
    case_id = accepted.json()["case_id"]
    assert await harness.db["outbox"].count_documents({"case_id": case_id}) == 1  # safe meanwhile
    await harness.hotline.publisher.flush()  # the publish settles in the background
    assert harness.published_types(case_id) == ["hotline.help_requested"]
    assert await harness.db["outbox"].count_documents({"case_id": case_id}) == 0  # acknowledged: removed


async def test_a_slow_publish_that_fails_after_the_answer_goes_to_the_relay(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound(harness, 0.3)

    async def failing(broker: Any, event: Any, **kwargs: Any) -> None:
        await asyncio.sleep(0.5)
        raise TimeoutError("no ack")

    monkeypatch.setattr(outbox_module, "publish_event", failing)
    accepted = await post(harness)
    assert accepted.status_code == 201 and accepted.json()["published"] is False
    await harness.hotline.publisher.flush()
    entry = await harness.db["outbox"].find_one({"case_id": accepted.json()["case_id"]})
    assert entry is not None and entry["state"] == "queued" and harness.hotline.publisher.backlog
    monkeypatch.undo()
    await harness.hotline.publisher.drain_once()
    assert harness.published_types(accepted.json()["case_id"]) == ["hotline.help_requested"]


async def test_open311_gets_the_refusal_as_its_error_list_with_retry_after(harness: Harness) -> None:
    bound(harness, 0.2)
    harness.hotline.slots = asyncio.Semaphore(1)
    await harness.hotline.slots.acquire()
    refused = await harness.client.post("/open311/v2/requests.json", data=form())
    assert refused.status_code == 503, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()[0]["code"] == 503 and "nothing was stored" in refused.json()[0]["description"]
    assert await harness.db["intakes"].count_documents({}) == 0
