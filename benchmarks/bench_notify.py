"""Notify's SLA sweep against the real store and broker.

With N open clocks (one pending timer each, spread over the next five days) the benchmark measures:
- how long a sweep takes to find the due timers, for 0 / 10 / 100 / 1,000 due: it should follow the
  number due, not N;
- the delay from a deadline passing to its breach event being received from Kafka (sweep interval 0.2 s).
For comparison it also times the same range query on one flat collection with a `due_at` index (the
plain MongoDB design) with 10,000 and 100,000 timers: FerretDB 1.24/SQLite answers it with a full scan.

    python -m benchmarks notify                      # N = 10,000 and 1,000,000
    BENCH_NOTIFY_COUNTS=10000,100000 python -m benchmarks notify
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer
from pymongo import ASCENDING, AsyncMongoClient

from benchmarks.support import BenchSettings
from common.app import Runtime
from common.kafka import make_broker
from common.logs import configure_logging
from services.notify import sweeper
from services.notify.clockwork import Clockwork, Notify
from services.notify.domain.policy import load_policy
from services.notify.outbox import Outbox
from services.notify.settings import Settings
from services.notify.store import NotifyStore
from services.notify.timers import Timer

BATCH = 10_000
HORIZON = timedelta(days=5)
DUE_COUNTS = (0, 10, 100, 1000)
DELAY_SAMPLES = 20
FLAT_COUNTS = (10_000, 100_000)


def payload(case_id: str, due: datetime) -> dict[str, Any]:
    return {
        "case_id": case_id,
        "clock": "citizen",
        "clock_key": "citizen",
        "target": "resolution",
        "department": "civil_affairs",
        "district": "500103",
        "due_at": due,
        "sla_class": "standard",
        "rule_id": "SLA-STANDARD-RESOLVE",
        "provisions": ["P6.2"],
        "stage": "breach",
    }


async def load_open_clocks(store: NotifyStore, n: int, now: datetime) -> float:
    """Insert n future timers in batches, straight into their buckets; returns the seconds it took."""
    wheel = store.sla_timers
    started = time.perf_counter()
    step = HORIZON / n
    for first in range(0, n, BATCH):
        by_bucket: dict[int, list[dict[str, Any]]] = {}
        for i in range(first, min(first + BATCH, n)):
            due = now + timedelta(minutes=10) + step * i
            case_id = f"CQ-BENCH-{i:07d}"
            by_bucket.setdefault(wheel.bucket_of(due, now), []).append(
                {"_id": f"{case_id}|citizen|resolution|breach", "due_at": due, "payload": payload(case_id, due)}
            )
        for bucket, docs in by_bucket.items():
            await wheel.insert_bulk(bucket, docs)
        if first and first % 200_000 == 0:
            print(f"    loaded {first:,} in {time.perf_counter() - started:.0f} s", flush=True)
    return time.perf_counter() - started


async def time_sweeps(store: NotifyStore, now: datetime) -> dict[int, float]:
    """Median time of `due()` with k timers due, k in DUE_COUNTS (the due ones are removed afterwards)."""
    out: dict[int, float] = {}
    for k in DUE_COUNTS:
        timers = [
            Timer(
                f"due-{k}-{i}", now - timedelta(seconds=30) + timedelta(milliseconds=i), payload(f"CQ-DUE-{i:07d}", now)
            )
            for i in range(k)
        ]
        placed = await store.sla_timers.schedule(timers, now)
        runs = []
        for _ in range(3):
            started = time.perf_counter()
            found = await store.sla_timers.due(datetime.now(UTC), max(k, 1))
            runs.append(time.perf_counter() - started)
            assert len(found) == k, (len(found), k)
        out[k] = statistics.median(runs)
        await store.sla_timers.cancel(placed.items())
    return out


async def flat_collection_sweep(client: AsyncMongoClient, n: int) -> float:
    """The single-collection design for comparison: n timers, 10 due, a `due_at` range query with a limit."""
    name = f"bench_notify_flat_{uuid.uuid4().hex[:8]}"
    coll = client[name]["timers"]
    await coll.create_index([("due_at", ASCENDING)])
    now = datetime.now(UTC)
    try:
        for first in range(0, n, BATCH):
            await coll.insert_many(
                [{"_id": i, "due_at": now + timedelta(minutes=10 + i)} for i in range(first, min(first + BATCH, n))]
            )
        await coll.insert_many([{"_id": -1 - i, "due_at": now - timedelta(seconds=i)} for i in range(10)])
        started = time.perf_counter()
        found = await coll.find({"due_at": {"$lte": now}}).sort("due_at", ASCENDING).limit(10).to_list(None)
        elapsed = time.perf_counter() - started
        assert len(found) == 10
        return elapsed
    finally:
        await client.drop_database(name)


async def breach_delays(runtime: Runtime[Notify], bootstrap: str, sweep_interval_s: float) -> list[float]:
    """Schedule timers due over the next few seconds, run the sweeper, measure deadline -> event received."""
    topic = f"bench-notify-sla-{uuid.uuid4().hex[:8]}"
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest")
    await consumer.start()
    now = datetime.now(UTC)
    dues = {
        f"CQ-DELAY-{i:03d}": now + timedelta(seconds=2) + timedelta(milliseconds=150 * i) for i in range(DELAY_SAMPLES)
    }
    timers = [Timer(f"{c}|breach", d, payload(c, d)) for c, d in dues.items()]
    await runtime.service.store.sla_timers.schedule(timers, now)

    async def loop() -> None:
        while True:
            await sweeper.sweep_once(runtime, topic=topic)
            await asyncio.sleep(sweep_interval_s)

    task = asyncio.create_task(loop())
    delays: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while len(delays) < DELAY_SAMPLES and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            received = datetime.now(UTC)
            for records in batch.values():
                for record in records:
                    case_id = record.key.decode()
                    delays.append((received - dues[case_id]).total_seconds())
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await consumer.stop()
    return delays


async def run(settings: BenchSettings, n: int) -> None:
    db_name = f"bench_notify_{uuid.uuid4().hex[:8]}"
    service = Settings(
        mongodb_database=db_name,
        kafka_bootstrap_servers=settings.kafka_bootstrap_servers,
        mongodb_url=settings.mongodb_url,
        sweep_interval_s=0.2,
        environment="test",
        log_level="WARNING",
    )
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    broker = make_broker(service)
    runtime: Runtime[Notify] = Runtime(settings=service, broker=broker, mongo=client, db=client[db_name])
    store = NotifyStore(runtime.db, bucket_s=service.timer_bucket_s)
    await store.ensure_indexes()
    policy = load_policy()
    outbox = Outbox(store, service)
    runtime.bind(Notify(store, policy, Clockwork(store, policy, outbox, caller_texts=False), outbox))
    await broker.start()
    try:
        now = datetime.now(UTC)
        load_s = await load_open_clocks(store, n, now)
        buckets = await store.sla_timers.registry.count_documents({})
        print(
            f"  {n:,} open clocks loaded in {load_s:.1f} s ({n / load_s:,.0f}/s) into {buckets} buckets of "
            f"{service.timer_bucket_s} s",
            flush=True,
        )
        for k, seconds in (await time_sweeps(store, datetime.now(UTC))).items():
            print(f"  sweep finding {k:>5,} due among {n:,} open: {seconds * 1000:8.1f} ms", flush=True)
        delays = await breach_delays(runtime, settings.kafka_bootstrap_servers, service.sweep_interval_s)
        if delays:
            print(
                f"  deadline -> breach event received ({len(delays)} timers, sweep every "
                f"{service.sweep_interval_s} s): median {statistics.median(delays) * 1000:.0f} ms, "
                f"max {max(delays) * 1000:.0f} ms",
                flush=True,
            )
        else:
            print("  no breach event received within 60 s", flush=True)
    finally:
        await broker.stop()
        await client.drop_database(db_name)
        await client.close()


async def main(settings: BenchSettings) -> None:
    configure_logging("bench-notify", "WARNING")
    counts = [int(c) for c in os.environ.get("BENCH_NOTIFY_COUNTS", "10000,1000000").split(",") if c]
    for n in counts:
        print(f"\n-- {n:,} open clocks --", flush=True)
        await run(settings, n)
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    try:
        print("\n-- for comparison: one flat collection with a due_at index (range query + sort + limit) --")
        for flat_n in FLAT_COUNTS:
            seconds = await flat_collection_sweep(client, flat_n)
            print(f"  sweep finding 10 due among {flat_n:,} in one collection: {seconds * 1000:8.1f} ms", flush=True)
    finally:
        await client.close()
