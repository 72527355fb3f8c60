"""After a hard Kafka crash (SIGKILL) and restart, the same hotline process goes on publishing calls (P6.2):
every call accepted before, during and after the outage reaches Kafka within seconds of the broker's
return, no process restarted, and the outage costs a few log lines rather than thousands.

A broker killed hard can lose the idempotent producer's state; aiokafka's producer then fails every send
with OutOfOrderSequenceNumber until it is replaced (common.kafka renews it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer
import pytest
from pymongo import MongoClient

from common.auth import issue_token
from common.settings import ServiceSettings
from contracts.events import HELP_REQUESTED_TOPIC
from tests.hotline.private_kafka import PrivateKafka
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TOKENS = ServiceSettings(service_name="test")
OUTAGE_S = 7.0
CALLS_PER_S = 10


@pytest.fixture(scope="module")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    kafka = PrivateKafka(tmp_path_factory.mktemp("restart-kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def hotline(private_kafka: PrivateKafka, mongodb_url: str, tmp_path: Path) -> Iterator[ServiceSet]:
    with ServiceSet(private_kafka.bootstrap, mongodb_url, ("hotline",), tmp_path,
                    extra_env={"HOTLINE_PUBLISH_TIMEOUT_S": "2"}) as services:
        yield services


@pytest.fixture
async def operator(hotline: ServiceSet) -> AsyncIterator[httpx.AsyncClient]:
    token = issue_token(TOKENS, sub="op-restart", role="operator", district="500103")
    async with httpx.AsyncClient(base_url=hotline["hotline"].url, timeout=30,
                                 headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


async def keep_calling(client: httpx.AsyncClient, accepted: list[str], stop: asyncio.Event) -> None:
    """Calls at a steady rate, each from another phone; every accepted case number is kept."""
    n = 0
    while not stop.is_set():
        n += 1
        started = time.monotonic()
        response = await client.post("/api/v1/help-requests", json={
            "caller": {"name": f"来电人{n}", "phone": f"1390001{n:04d}"},
            "place": {"district": "500103", "address": f"民族路{n}号"},
            "needs": ["other"], "description": f"重启期间第{n}个来电",
        })
        assert response.status_code == 201, response.text
        accepted.append(response.json()["case_id"])
        await asyncio.sleep(max(0.0, 1 / CALLS_PER_S - (time.monotonic() - started)))


async def keys_on_topic(bootstrap: str, topic: str, *, until: set[str], timeout_s: float) -> set[str]:
    """The record keys on `topic`, read from the start until every key of `until` was seen or time ran out
    (a call may be on the topic twice: a send that timed out can still land)."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen: set[str] = set()
    try:
        deadline = time.monotonic() + timeout_s
        while not until <= seen and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                seen.update(r.key.decode() for r in records)
    finally:
        await consumer.stop()
    return seen


def log_lines(path: Path) -> int:
    return len(path.read_text(errors="replace").splitlines())


async def test_the_hotline_publishes_again_after_kafka_is_killed_and_restarted(
    private_kafka: PrivateKafka, hotline: ServiceSet, operator: httpx.AsyncClient
) -> None:
    service = hotline["hotline"]
    accepted: list[str] = []
    stop = asyncio.Event()
    caller = asyncio.ensure_future(keep_calling(operator, accepted, stop))
    try:
        await eventually(lambda: len(accepted) >= 10, timeout=30, what="calls before the crash")
        lines_before = log_lines(service.log_path)
        await asyncio.to_thread(private_kafka.kill)
        await asyncio.sleep(OUTAGE_S)
        lines_during = log_lines(service.log_path) - lines_before
        await asyncio.to_thread(private_kafka.start)
        returned_at = time.monotonic()
        await asyncio.sleep(5)  # calls keep coming after the broker's return
    finally:
        stop.set()
        await caller

    on_topic = await keys_on_topic(private_kafka.bootstrap, HELP_REQUESTED_TOPIC, until=set(accepted),
                                   timeout_s=60)
    delivered_after_s = time.monotonic() - returned_at
    missing = sorted(set(accepted) - on_topic)
    assert not missing, f"{len(missing)} of {len(accepted)} accepted calls never reached Kafka:\n{service.log_tail()}"
    print(f"\n{len(accepted)} calls; all on Kafka {delivered_after_s:.1f} s after its return; "
          f"{lines_during} log lines during the {OUTAGE_S:.0f} s outage")
    # Logged once when it starts and then at most every few seconds, not per reconnect attempt.
    assert lines_during < 100, f"{lines_during} log lines in a {OUTAGE_S:.0f} s outage"

    with MongoClient(hotline.mongodb_url) as client:
        outbox = client[hotline.databases()[0]]["outbox"]
        await eventually(lambda: outbox.count_documents({}) == 0, timeout=30, what="an empty outbox")
