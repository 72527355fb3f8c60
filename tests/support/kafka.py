"""Small Kafka helpers for tests: unique topics, creating them, reading them back."""

from __future__ import annotations

import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


def unique_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def create_topics(bootstrap: str, *topics: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics])
    except TopicAlreadyExistsError:
        pass
    finally:
        await admin.close()


async def read_topic(bootstrap: str, topic: str, *, expect: int, timeout_s: float = 20.0) -> list[Any]:
    """Read `topic` from the beginning until `expect` records arrived or the timeout passed."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        import time

        deadline = time.monotonic() + timeout_s
        while len(records) < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
    finally:
        await consumer.stop()
    return records
