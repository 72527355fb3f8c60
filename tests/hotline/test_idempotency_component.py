"""Intake is safe to retry (P6.2): a submission repeated with the same Idempotency-Key (a retry after a lost
answer, a second press of submit) gets the first one's case back, never a second case."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from aiokafka.errors import KafkaConnectionError
from pymongo.errors import AutoReconnect

from tests.hotline.conftest import TEST_API_KEY, Harness, call

pytestmark = pytest.mark.component


async def post(harness: Harness, key: str | None, sub: str = "op-1", **overrides):
    headers = harness.headers(sub=sub)
    if key is not None:
        headers["Idempotency-Key"] = key
    return await harness.client.post("/api/v1/help-requests", json=call(**overrides), headers=headers)


async def test_a_repeated_submission_with_the_same_key_gets_the_same_case(harness: Harness) -> None:
    first = await post(harness, "form-7f3a")
    again = await post(harness, "form-7f3a")
    assert first.status_code == again.status_code == 201, (first.text, again.text)
    assert again.json()["case_id"] == first.json()["case_id"]
    assert first.json()["replayed"] is False and again.json()["replayed"] is True
    assert await harness.db["intakes"].count_documents({}) == 1
    # The repeat sends the same event again (the first request may have failed before it reached the outbox):
    # one case, one event id, which consumers take once.
    sent = [b for b in harness.published if b["type"] == "hotline.help_requested"]
    assert {(b["case_id"], b["event_id"]) for b in sent} == {(first.json()["case_id"], sent[0]["event_id"])}


async def test_a_repeat_whose_first_request_never_reached_the_outbox_still_gets_its_call_published(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first request stored the intake record, then failed (the store went away before the outbox entry
    and Kafka refused too): the operator's repeat must not leave the call unpublished."""
    publisher = harness.hotline.publisher
    real = publisher.accept

    async def failing(event: object, wait_s: float | None = None) -> bool:
        raise ConnectionError("the store and Kafka are gone")

    monkeypatch.setattr(publisher, "accept", failing)
    first = await post(harness, "form-lost-outbox")
    assert first.status_code == 503 and first.headers["Retry-After"], first.text
    assert first.json()["code"] == "intake_unconfirmed" and "同一表单" in first.json()["message_zh"]
    assert await harness.db["intakes"].count_documents({}) == 1 and harness.published == []
    monkeypatch.setattr(publisher, "accept", real)
    again = await post(harness, "form-lost-outbox")
    assert again.status_code == 201 and again.json()["replayed"] is True
    assert harness.published_types(again.json()["case_id"]) == ["hotline.help_requested"]


async def test_a_call_whose_event_neither_the_outbox_nor_kafka_took_is_published_once_they_are_back(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """P6.2: the intake record is stored, then the store goes away before the outbox entry while Kafka is
    away too. The process keeps the event and the relay's next round stores and publishes it, though the
    operator never repeats the call; a repeat with the key still answers the same case."""
    publisher = harness.hotline.publisher

    async def store_gone(event: object, *, direct: bool) -> dict:
        raise AutoReconnect("connection closed")

    async def kafka_gone(event: object, timeout: float) -> None:
        raise KafkaConnectionError("broker unreachable")

    with monkeypatch.context() as faults:
        faults.setattr(publisher.outbox, "append", store_gone)
        faults.setattr(publisher, "_publish", kafka_gone)
        first = await post(harness, "form-both-gone")
    assert first.status_code == 503 and first.json()["code"] == "intake_unconfirmed", first.text
    assert await harness.db["intakes"].count_documents({}) == 1 and harness.published == []
    assert publisher.owed == 1
    stored = await harness.db["intakes"].find_one({})
    assert stored is not None
    case_id = stored["_id"]
    assert await publisher.drain_once() == 1  # the relay's next round, the store and Kafka back
    assert publisher.owed == 0
    assert harness.published_types(case_id) == ["hotline.help_requested"]
    again = await post(harness, "form-both-gone")
    assert again.status_code == 201 and again.json()["case_id"] == case_id and again.json()["replayed"] is True


async def test_a_key_left_pointing_at_another_calls_number_is_let_go_and_the_call_taken_afresh(
    harness: Harness,
) -> None:
    """A request tied its key to a number, then failed before its intake record; another call took the
    number. The repeat must not be answered with the other caller's case."""
    other = await post(harness, None)
    taken = other.json()["case_id"]
    await harness.db["idempotency_keys"].insert_one(
        {"_id": "op-1:form-stale", "case_id": taken, "at": datetime.now(UTC)}
    )
    again = await post(harness, "form-stale", caller={"name": "赵六", "phone": "13700001111"})
    assert again.status_code == 201, again.text
    assert again.json()["case_id"] != taken and again.json()["replayed"] is False
    assert await harness.db["intakes"].count_documents({}) == 2


async def test_concurrent_submissions_with_one_key_open_one_case(harness: Harness) -> None:
    answers = await asyncio.gather(*(post(harness, "double-click") for _ in range(5)))
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["case_id"] for a in answers}) == 1
    assert sum(not a.json()["replayed"] for a in answers) == 1
    assert await harness.db["intakes"].count_documents({}) == 1


async def test_keys_are_each_operator_s_own_and_calls_without_a_key_are_new_cases(harness: Harness) -> None:
    mine = await post(harness, "k-1", sub="op-1")
    theirs = await post(harness, "k-1", sub="op-2")
    assert mine.json()["case_id"] != theirs.json()["case_id"]
    plain = [await post(harness, None) for _ in range(2)]
    assert plain[0].json()["case_id"] != plain[1].json()["case_id"]
    assert await harness.db["intakes"].count_documents({}) == 4


async def test_a_malformed_key_is_refused_naming_the_header(harness: Harness) -> None:
    response = await post(harness, "has spaces in it")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.text
    assert await harness.db["intakes"].count_documents({}) == 0


async def test_an_open311_post_repeated_with_its_key_gets_the_same_request_id(harness: Harness) -> None:
    form = {
        "api_key": TEST_API_KEY,
        "service_code": "other",
        "description": "楼道里有老人需要帮助",
        "address_string": "民族路 8 号",
        "attribute[district]": "500103",
        "first_name": "王",
        "phone": "13812345678",
    }
    ids = []
    for _ in range(2):
        response = await harness.client.post(
            "/open311/v2/requests.json", data=form, headers={"Idempotency-Key": "city-app-42"}
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()[0]["service_request_id"])
    assert ids[0] == ids[1]
    assert await harness.db["intakes"].count_documents({}) == 1
