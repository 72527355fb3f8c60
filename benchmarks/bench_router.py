"""Router throughput: help requests consumed, routed, recorded and dispatched per second by the router's
subscriber (in-process, one process) against the real broker and store, beside a raw aiokafka
consume→produce relay over the same broker in the same run.

    python -m benchmarks router   (BENCH_ROUTER_MESSAGES, BENCH_ROUTER_PARTITIONS, BENCH_ROUTER_BATCH,
                                   BENCH_ROUTER_WARM_UP)

Both sides read the same number of pre-produced requests from their own fresh topic. Each rate runs from
the moment the first input batch reached the code under test to the (producer) timestamp of the last
output record, so group joins and start-up do not count. The CPU figure is this process's (the code
under test plus the reader that waits for its output) for the whole phase, divided by the messages: the
broker and the store use their own, on the same cores.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic_settings import BaseSettings, SettingsConfigDict
from pymongo import AsyncMongoClient

from benchmarks.support import BenchSettings
from common.app import Runtime, settle_heap
from common.kafka import BatchProducer, make_broker
from common.logs import configure_logging
from common.store import open_mongo
from contracts.codes import departments
from contracts.events import CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC, department_queue_topic
from contracts.events.hotline import Caller, HelpRequested, Place
from services.router.app import catalogue_of
from services.router.cases import BatchOutcome, CaseService
from services.router.intake import run_intake
from services.router.settings import Settings
from services.router.store import RouterStore

NEEDS = [
    ("homeless_cold",),
    ("medical_aid",),
    ("price_gouging",),
    ("stranded_person",),
    ("dibao_application",),
    ("housing_aid", "education_aid"),
    ("other",),
    ("institution_hazard",),
]
TARGET_PER_S = 2000


class RouterBench(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BENCH_ROUTER_", extra="ignore")

    messages: int = 10000
    partitions: int = 12  # input topics (the request topic and the relay's)
    output_partitions: int = 3  # lifecycle and department queues, as the broker's default
    batch: int = 1000
    warm_up: int = 10000  # messages relayed before anything is measured
    timeout_s: float = 120.0


def request_bytes(i: int, run: str) -> tuple[bytes, bytes]:
    case_id = f"CQ-{run}-{i:06d}"
    event = HelpRequested(
        case_id=case_id,
        received_at=datetime.now(UTC),
        operator_id="bench",
        caller=Caller(name="测试", phone="13800000000"),
        place=Place(district="500103"),
        needs=NEEDS[i % len(NEEDS)],
        household_status="dibao" if i % 3 == 0 else "unknown",
        emergency=i % 10 == 0,
        description="基准测试",
    )
    return case_id.encode(), event.model_dump_json().encode()


async def create_topics(bootstrap: str, topics: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(t, num_partitions=partitions, replication_factor=1) for t in topics])
    finally:
        await admin.close()


async def delete_topics(bootstrap: str, prefix: str) -> None:
    """Leave the shared broker as it was: drop this run's topics."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if topics:
            await admin.delete_topics(topics)
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5, max_batch_size=256 * 1024
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def last_output(
    bootstrap: str, topic: str, expect: int, timeout_s: float, only_type: str | None = None
) -> tuple[int, float]:
    """Wait until `expect` distinct keys (of `only_type`) are on `topic`; return (count, last timestamp in s)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    seen: set[bytes] = set()
    last = 0
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < expect and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                for record in records:
                    if only_type and f'"type":"{only_type}"'.encode() not in record.value:
                        continue
                    seen.add(record.key)  # distinct cases: a redelivered request republishes the same
                    last = max(last, record.timestamp)
    finally:
        await consumer.stop()
    return len(seen), last / 1000


class Clock:
    """When the code under test first got input (wall clock, comparable with Kafka's record timestamps)."""

    def __init__(self) -> None:
        self.started: float | None = None

    def start(self) -> None:
        if self.started is None:
            self.started = time.time()


async def run_relay(
    bootstrap: str,
    source: str,
    sink: str,
    stop: asyncio.Event,
    clock: Clock,
    store: Callable[[list[ConsumerRecord]], Awaitable[Any]] | None = None,
) -> None:
    """The baseline: consume a batch, (`store` it,) produce each record onward, wait for the acks, commit."""
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        group_id=f"relay-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if batch:
                clock.start()
            received = [r for records in batch.values() for r in records]
            if received and store is not None:
                await store(received)
            futures = [await producer.send(sink, r.value, key=r.key) for r in received]
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit()
    finally:
        await consumer.stop()
        await producer.stop()


class TimedCaseService(CaseService):
    clock: Clock

    async def dispatch_requests(self, requests: list[HelpRequested], *, producer: BatchProducer) -> BatchOutcome:
        self.clock.start()
        return await super().dispatch_requests(requests, producer=producer)


async def run_router(settings: Settings, stop: asyncio.Event, clock: Clock) -> None:
    """The router's help-request intake exactly as the service runs it (desk and API left out)."""
    mongo = open_mongo(settings)
    broker = make_broker(settings)
    runtime: Runtime[CaseService] = Runtime(
        settings=settings, broker=broker, mongo=mongo, db=mongo[settings.database_name]
    )
    store = RouterStore(runtime.db, batch_timeout_s=settings.batch_timeout_s)
    await store.ensure_indexes()
    service = TimedCaseService(store=store, broker=broker, settings=settings, catalogue=catalogue_of(settings))
    service.clock = clock
    runtime.bind(service)
    settle_heap()  # as the service's lifespan does
    runtime.kafka_connected.set()
    intake = asyncio.create_task(run_intake(runtime))
    try:
        await stop.wait()
    finally:
        intake.cancel()
        await asyncio.gather(intake, return_exceptions=True)
        await mongo.close()


async def main(bench: BenchSettings) -> None:
    opts = RouterBench()
    configure_logging("router-bench", "WARNING", json=True)
    bootstrap, run = bench.kafka_bootstrap_servers, uuid.uuid4().hex[:8]
    ns = f"bench-{run}."
    database = f"bench_router_{run}"
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        mongodb_url=bench.mongodb_url,
        mongodb_database=database,
        kafka_group_id=f"bench-router-{run}",
        topic_namespace=ns,
        desk_enabled=False,
        intake_batch_size=opts.batch,
        log_level="WARNING",
        log_json=True,
    )
    input_topic, lifecycle = settings.topic(HELP_REQUESTED_TOPIC), settings.topic(CASE_LIFECYCLE_TOPIC)
    relay_in, relay_out = f"{ns}relay-in", f"{ns}relay-out"
    warm_in, warm_out = f"{ns}warm-up-in", f"{ns}warm-up-out"
    await create_topics(bootstrap, [input_topic, relay_in, relay_out, warm_in, warm_out], opts.partitions)
    await create_topics(
        bootstrap,
        [lifecycle, f"{input_topic}.dlq", *(settings.topic(department_queue_topic(d)) for d in departments())],
        opts.output_partitions,
    )
    records = [request_bytes(i, f"{int(run, 16) % 10**8:08d}") for i in range(opts.messages)]
    await produce(bootstrap, relay_in, records)
    await produce(bootstrap, input_topic, records)
    # A broker just started runs its code interpreted until the JVM has compiled it: measured right after
    # `infra.sh start`, the relay ran at about half its warm speed. A relay pass on topics of its own first,
    # so that neither side is measured against a cold broker.
    warm = records[: opts.warm_up]
    await produce(bootstrap, warm_in, warm)
    stop, warm_clock = asyncio.Event(), Clock()
    warm_relay = asyncio.create_task(run_relay(bootstrap, warm_in, warm_out, stop, warm_clock))
    warmed, warm_end = await last_output(bootstrap, warm_out, len(warm), opts.timeout_s)
    stop.set()
    await warm_relay
    print(f"broker warm-up: {warmed} msgs relayed in {warm_end - (warm_clock.started or warm_end):.2f} s", flush=True)
    print(
        f"router bench: {opts.messages} help requests, {opts.partitions} partitions, "
        f"intake batches of up to {opts.batch}",
        flush=True,
    )

    stop, relay_clock, cpu = asyncio.Event(), Clock(), time.process_time()
    relay = asyncio.create_task(run_relay(bootstrap, relay_in, relay_out, stop, relay_clock))
    relayed, relay_end = await last_output(bootstrap, relay_out, opts.messages, opts.timeout_s)
    stop.set()
    await relay
    relay_s, relay_cpu = relay_end - (relay_clock.started or relay_end), time.process_time() - cpu

    stop, router_clock, cpu = asyncio.Event(), Clock(), time.process_time()
    router = asyncio.create_task(run_router(settings, stop, router_clock))
    routed, router_end = await last_output(
        bootstrap, lifecycle, opts.messages, opts.timeout_s, only_type="case.dispatched"
    )
    stop.set()
    await router
    router_s, router_cpu = router_end - (router_clock.started or router_end), time.process_time() - cpu

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(bench.mongodb_url)
    stored = await mongo[database]["cases"].count_documents({})
    await mongo.drop_database(database)
    await mongo.close()
    await delete_topics(bootstrap, ns)

    relay_rate = relayed / relay_s if relay_s else float("inf")
    router_rate = routed / router_s if router_s else float("inf")
    print(
        f"raw aiokafka relay : {relayed:6d} msgs in {relay_s:6.2f} s = {relay_rate:9.0f} /s, "
        f"{relay_cpu / opts.messages * 1e6:4.0f} µs of this process's CPU per message",
        flush=True,
    )
    print(
        f"router dispatch    : {routed:6d} cases in {router_s:6.2f} s = {router_rate:9.0f} /s, "
        f"{router_cpu / opts.messages * 1e6:4.0f} µs per case ({stored} cases stored)",
        flush=True,
    )
    print(f"ratio router/relay : {router_rate / relay_rate:.3f}  (targets: >= {TARGET_PER_S}/s and >= 0.5)", flush=True)
    met = router_rate >= TARGET_PER_S and router_rate >= relay_rate / 2
    print(f"target {'MET' if met else 'MISSED'}", flush=True)
    if routed < opts.messages:
        raise RuntimeError(f"only {routed} of {opts.messages} cases dispatched within {opts.timeout_s}s")
