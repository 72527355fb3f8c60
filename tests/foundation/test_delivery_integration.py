"""The delivery rules against the real Kafka broker and the real store (ARCHITECTURE.md)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from pymongo.errors import DuplicateKeyError

from common.kafka import SUBSCRIBER_ACK_POLICY, make_broker
from common.settings import ServiceSettings
from tests.support.kafka import create_topics, read_topic, unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def settings(bootstrap: str) -> ServiceSettings:
    return ServiceSettings(
        service_name=unique_name("it"),
        kafka_bootstrap_servers=bootstrap,
        consumer_max_attempts=3,
        consumer_backoff_initial_s=0.01,
        consumer_backoff_max_s=0.05,
    )


async def test_message_produced_with_acks_all_reaches_a_faststream_subscriber(kafka_bootstrap: str) -> None:
    topic = unique_name("it-acks")
    await create_topics(kafka_bootstrap, topic)
    received: list[dict] = []
    broker = make_broker(settings(kafka_bootstrap))

    @broker.subscriber(topic, group_id=unique_name("g"), auto_offset_reset="earliest", ack_policy=SUBSCRIBER_ACK_POLICY)
    async def handle(body: dict) -> None:
        received.append(body)

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    async with broker:
        await broker.start()
        meta = await producer.send_and_wait(topic, b'{"hello": "world"}', key=b"CQ-1")
        assert meta.offset == 0
        await eventually(lambda: received, what="the subscriber to receive the message")
    await producer.stop()
    assert received == [{"hello": "world"}]


async def test_failing_handler_is_retried_then_dead_lettered_and_the_partition_moves_on(kafka_bootstrap: str) -> None:
    topic = unique_name("it-dlq")
    await create_topics(kafka_bootstrap, topic, f"{topic}.dlq")
    attempts: dict[str, int] = {}
    processed: list[str] = []
    broker = make_broker(settings(kafka_bootstrap))

    @broker.subscriber(topic, group_id=unique_name("g"), auto_offset_reset="earliest", ack_policy=SUBSCRIBER_ACK_POLICY)
    async def handle(body: dict) -> None:
        attempts[body["id"]] = attempts.get(body["id"], 0) + 1
        if body["id"] == "poison":
            raise RuntimeError("cannot handle this one")
        processed.append(body["id"])

    async with broker:
        await broker.start()
        await broker.publish({"id": "poison"}, topic=topic, key=b"same-key")
        await broker.publish({"id": "next"}, topic=topic, key=b"same-key")
        await eventually(lambda: processed, what="the next message to be processed")

    assert attempts == {"poison": 3, "next": 1}
    dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", expect=1)
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["x-dlq-error"] == "RuntimeError: cannot handle this one"
    assert headers["x-dlq-original-topic"] == topic and headers["x-dlq-attempts"] == "3"
    assert dead[0].value == b'{"id":"poison"}' and dead[0].key == b"same-key"


async def test_body_that_fails_validation_goes_to_the_dlq_with_the_validation_error(kafka_bootstrap: str) -> None:
    from contracts.events.hotline import HelpRequested

    topic = unique_name("it-invalid")
    await create_topics(kafka_bootstrap, topic, f"{topic}.dlq")
    seen: list[str] = []
    broker = make_broker(settings(kafka_bootstrap))

    @broker.subscriber(topic, group_id=unique_name("g"), auto_offset_reset="earliest", ack_policy=SUBSCRIBER_ACK_POLICY)
    async def handle(request: HelpRequested) -> None:
        seen.append(request.case_id)

    async with broker:
        await broker.start()
        await broker.publish({"case_id": "CQ-20260215-000001", "needs": []}, topic=topic)
        dead = await read_topic(kafka_bootstrap, f"{topic}.dlq", expect=1)
    assert seen == []
    headers = {k: v.decode() for k, v in dead[0].headers}
    assert headers["x-dlq-error-type"] == "ValidationError"
    assert headers["x-dlq-attempts"] == "1"  # retrying cannot fix a bad body


async def test_offset_is_committed_only_after_the_effect_is_durable(
    kafka_bootstrap: str, mongodb_url: str, db, db_name: str
) -> None:
    topic, group = unique_name("it-kill"), unique_name("g")
    await create_topics(kafka_bootstrap, topic)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    await producer.send_and_wait(topic, b'{"key": "effect-1"}')
    await producer.stop()

    cmd = [sys.executable, "-m", "tests.support.killable_consumer", kafka_bootstrap, topic, group, mongodb_url, db_name]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([*cmd, "--hang"], cwd=ROOT, env=env)
    try:
        await eventually(lambda: db["effects"].count_documents({}), timeout=60, what="the effect of the first run")
        first.send_signal(signal.SIGKILL)  # inside the handler: effect durable, offset not committed
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()

    second = subprocess.Popen(cmd, cwd=ROOT, env=env)
    try:
        await eventually(
            lambda: _runs_at_least(db, 2), timeout=60, what="the message to be redelivered to the restarted consumer"
        )
        assert await db["effects"].count_documents({}) == 1  # exactly once in effect

        async def committed() -> int | None:
            consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
            await consumer.start()
            try:
                return await consumer.committed(TopicPartition(topic, 0))
            finally:
                await consumer.stop()

        assert await eventually(committed, timeout=30, what="the restarted consumer to commit") == 1
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(20)
        except subprocess.TimeoutExpired:
            second.kill()


async def _runs_at_least(db, n: int) -> bool:
    return await db["runs"].count_documents({}) >= n


async def test_unique_index_and_upsert_deduplicate_a_redelivered_event(db) -> None:
    events = db["processed"]
    await events.create_index("event_id", unique=True)
    event = {"event_id": "e-1", "case_id": "CQ-20260215-000001"}
    await events.insert_one(dict(event))
    with pytest.raises(DuplicateKeyError):
        await events.insert_one(dict(event))
    for _ in range(3):  # redelivery applies the same upsert
        await events.update_one(
            {"event_id": "e-2"}, {"$setOnInsert": {"case_id": "CQ-2"}, "$inc": {"seen": 1}}, upsert=True
        )
    assert await events.count_documents({}) == 2
    assert (await events.find_one({"event_id": "e-2"}))["seen"] == 3
