"""`common.kafka.BatchProducer` and `event_record`: the hot path's records are the ones `publish_event` sends,
on the partitions Kafka's default partitioner picks, in order per key, against the real broker."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime

import pytest
from aiokafka.partitioner import DefaultPartitioner

from common.kafka import BatchProducer, KeyHashPartitioner, event_headers, event_record
from contracts.events.router import CaseSignedFor
from tests.support.kafka import create_topics, read_topic, unique_name

pytestmark = pytest.mark.integration


def test_the_remembering_partitioner_picks_what_kafka_s_default_picks() -> None:
    ours, default = KeyHashPartitioner(max_keys=50), DefaultPartitioner()
    for count in (1, 3, 7, 12, 50):
        partitions = list(range(count))
        for i in range(400):  # more keys than it remembers: the memory is cleared and refilled
            key = f"CQ-20260215-{i:06d}".encode()
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)
            assert ours(key, partitions, partitions) == default(key, partitions, partitions)  # remembered


def test_an_event_record_is_what_publish_event_sends() -> None:
    event = CaseSignedFor(
        occurred_at=datetime(2026, 2, 15, 8, tzinfo=UTC),
        case_id="CQ-20260215-000001",
        task_id="CQ-20260215-000001-T1",
        department="civil_affairs",
        district="500103",
        actor="w-1",
    )
    key, value, headers = event_record(event.model_dump(mode="json"))
    assert key == b"CQ-20260215-000001"
    assert CaseSignedFor.model_validate_json(value) == event
    expected = {**event_headers(event), "content-type": "application/json", "correlation_id": str(event.event_id)}
    assert {name: raw.decode() for name, raw in headers} == expected


async def test_records_land_in_order_per_key_on_the_default_partitions(kafka_bootstrap: str) -> None:
    topics = [unique_name("it-batch-a"), unique_name("it-batch-b")]
    await create_topics(kafka_bootstrap, *topics, partitions=3)
    # A small batch size, so batches fill up and are sent in the middle of the records as well.
    producer = BatchProducer(kafka_bootstrap, client_id=unique_name("batch"), max_batch_size=1024)
    sent = [
        (
            topics[n % 2],
            f"CQ-{n % 7}".encode(),
            json.dumps({"n": n, "pad": "x" * 100}).encode(),
            [("n", str(n).encode())],
        )
        for n in range(300)
    ]
    await producer.start()
    try:
        futures = await producer.send(sent)
        assert len(futures) > 6  # one per topic partition would be 6: some batches were sent full
        for future in futures:
            await future
    finally:
        await producer.stop()
    default = DefaultPartitioner()
    for topic in topics:
        received = await read_topic(kafka_bootstrap, topic, expect=150)
        assert len(received) == 150
        by_key: dict[bytes, list[int]] = defaultdict(list)
        for record in received:
            n = json.loads(record.value)["n"]
            assert record.partition == default(record.key, [0, 1, 2], [0, 1, 2])
            assert dict(record.headers)["n"] == str(n).encode()
            by_key[record.key].append(n)
        for key, numbers in by_key.items():
            assert numbers == sorted(numbers), f"{topic} {key!r} out of order"
            assert numbers == [n for (t, k, _, _), n in zip(sent, range(300), strict=True) if t == topic and k == key]
