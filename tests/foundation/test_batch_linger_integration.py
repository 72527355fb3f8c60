"""`common.batches.BatchConsumer(linger_ms=...)` against the real broker: while records come slowly, a
lingering consumer takes them in fewer, larger batches than one that does not linger, and still every
record, each within about the linger of its sending."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaProducer

from common.app import Runtime
from common.batches import BatchConsumer
from common.settings import ServiceSettings
from tests.support.kafka import create_topics, unique_name

pytestmark = pytest.mark.integration
LINGER_MS = 300
RECORDS = 60
GAP_S = 0.02  # one record every 20 ms: 1.2 s of records


async def test_a_lingering_consumer_takes_fewer_larger_batches_and_every_record(kafka_bootstrap, mongo_client, db_name):
    topic = unique_name("it-linger")
    await create_topics(kafka_bootstrap, topic, partitions=2)
    settings = ServiceSettings(service_name=unique_name("linger"), kafka_bootstrap_servers=kafka_bootstrap)
    runtime: Runtime[object] = Runtime(settings=settings, broker=None, mongo=mongo_client, db=mongo_client[db_name])
    runtime.kafka_connected.set()
    batches: dict[int, list[list[int]]] = {LINGER_MS: [], 0: []}
    seen_at: dict[int, dict[int, float]] = {LINGER_MS: {}, 0: {}}

    def handler(linger: int):
        async def handle(records):
            batches[linger].append([int(r.value) for r in records])
            for r in records:
                seen_at[linger][int(r.value)] = time.monotonic()
            return []

        return handle

    tasks = [
        asyncio.create_task(
            BatchConsumer(
                name=f"linger-{linger}",
                topics=(topic,),
                group_id=unique_name(f"it-linger-{linger}"),
                handler=handler(linger),
                linger_ms=linger,
            ).run(runtime)
        )
        for linger in (LINGER_MS, 0)
    ]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
    await producer.start()
    try:

        async def until(check, what: str, timeout_s: float = 60.0) -> None:
            deadline = time.monotonic() + timeout_s
            while not check():
                assert time.monotonic() < deadline, what
                await asyncio.sleep(0.05)

        # A first record both must have taken: from here on both consumers hold their partitions.
        await producer.send_and_wait(topic, b"-1", partition=0)
        await producer.send_and_wait(topic, b"-2", partition=1)
        await until(lambda: all({-1, -2} <= set(s) for s in seen_at.values()), "the consumers never started")
        for linger in batches:
            batches[linger].clear()
        sent_at: dict[int, float] = {}
        for n in range(RECORDS):
            await producer.send_and_wait(topic, str(n).encode(), partition=n % 2)
            sent_at[n] = time.monotonic()
            await asyncio.sleep(GAP_S)
        await until(lambda: all(set(range(RECORDS)) <= set(s) for s in seen_at.values()), "records not all taken")
    finally:
        await producer.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    for linger, taken in batches.items():
        assert sorted(n for batch in taken for n in batch) == list(range(RECORDS)), linger
    lingering, eager = len(batches[LINGER_MS]), len(batches[0])
    # 1.2 s of records in batches of about 0.3 s each: a handful, against (nearly) one per record.
    assert lingering <= 12, batches[LINGER_MS]
    assert lingering * 3 <= eager, (lingering, eager)
    waits = sorted(seen_at[LINGER_MS][n] - sent_at[n] for n in range(RECORDS))
    assert waits[-1] < LINGER_MS / 1000 + 1.0, waits[-5:]
