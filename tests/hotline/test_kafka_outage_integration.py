"""No call is ever lost (P6.2): a REAL Kafka broker stops, calls keep coming, the hotline process is killed
and restarted, Kafka comes back, and every call reaches the router exactly once in effect, in order; then
a second outage that the same hotline process rides out.

The broker is a private one (tests/support/private_kafka.py) so stopping it never disturbs the shared
broker; the hotline and the router run as real uvicorn processes against it and the shared store.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from common.auth import issue_token
from common.settings import ServiceSettings
from contracts.events import HELP_REQUESTED_TOPIC
from tests.support.kafka import read_topic
from tests.support.private_kafka import PrivateKafka
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

TOKENS = ServiceSettings(service_name="test")


@pytest.fixture(scope="module")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    kafka = PrivateKafka(tmp_path_factory.mktemp("private-kafka"))
    kafka.start()
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture
def stack(private_kafka: PrivateKafka, mongodb_url: str, tmp_path: Path) -> Iterator[ServiceSet]:
    services = ServiceSet(
        private_kafka.bootstrap,
        mongodb_url,
        ("hotline", "router"),
        tmp_path,
        extra_env={
            "HOTLINE_PUBLISH_TIMEOUT_S": "2",
            "ROUTER_DESK_ENABLED": "false",  # the router's department desks are not under test here
        },
    )
    with services:
        yield services


@pytest.fixture
async def operator(stack: ServiceSet) -> AsyncIterator[httpx.AsyncClient]:
    token = issue_token(TOKENS, sub="op-outage", role="operator", district="500103")
    async with httpx.AsyncClient(
        base_url=stack["hotline"].url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        yield client


async def take_call(client: httpx.AsyncClient, n: int) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/help-requests",
        json={
            "caller": {"name": f"来电人{n}", "phone": f"1380000{n:04d}"},
            "place": {"district": "500103", "address": f"民生路{n}号"},
            "needs": ["other"],
            "description": f"第{n}个来电",
        },
    )
    assert response.status_code == 201, response.text
    return response.json()


async def statuses(client: httpx.AsyncClient, case_ids: list[str]) -> dict[str, str]:
    out = {}
    for case_id in case_ids:
        response = await client.get(f"/api/v1/cases/{case_id}/status")
        out[case_id] = response.json()["status"] if response.status_code == 200 else f"http {response.status_code}"
    return out


async def all_dispatched(client: httpx.AsyncClient, case_ids: list[str]) -> bool:
    return set((await statuses(client, case_ids)).values()) == {"dispatched"}


async def wait_healthy(url: str, timeout: float = 60) -> None:
    async def healthy() -> bool:
        try:
            async with httpx.AsyncClient(timeout=2) as client:
                return (await client.get(f"{url}/healthz")).status_code == 200
        except httpx.HTTPError:
            return False

    await eventually(healthy, timeout=timeout, interval=0.2, what="hotline /healthz")


async def test_no_call_is_lost_while_kafka_is_down_and_the_hotline_is_killed(
    private_kafka: PrivateKafka, stack: ServiceSet, operator: httpx.AsyncClient
) -> None:
    hotline, router = stack["hotline"], stack["router"]

    # Kafka up: calls go straight through and reach the router.
    before = [await take_call(operator, n) for n in range(2)]
    assert all(c["published"] for c in before)
    ids = [c["case_id"] for c in before]
    await eventually(lambda: all_dispatched(operator, ids), timeout=60, what="dispatch before the outage")

    # Kafka down: every call still gets its case number at once, from the outbox.
    await asyncio.to_thread(private_kafka.stop)
    during = [await take_call(operator, n) for n in range(2, 5)]
    assert not any(c["published"] for c in during)

    # The hotline process dies (SIGKILL, no clean-up) and comes back while Kafka is still down.
    await asyncio.to_thread(hotline.stop, "kill")
    hotline.start()
    await wait_healthy(hotline.url)
    after_restart = [await take_call(operator, n) for n in range(5, 7)]
    assert not any(c["published"] for c in after_restart)
    ids += [c["case_id"] for c in during + after_restart]
    assert len(set(ids)) == 7 and ids == sorted(ids)

    # Kafka back: the relay publishes the backlog in order; the router dispatches every case once.
    await asyncio.to_thread(private_kafka.start)
    final = await eventually(
        lambda: all_dispatched(operator, ids), timeout=120, interval=0.5, what="every call dispatched after the outage"
    )
    assert final, hotline.log_tail()

    # A second outage, this time the same hotline process rides it out and its relay resumes.
    await asyncio.to_thread(private_kafka.stop)
    second = [await take_call(operator, n) for n in range(7, 10)]
    assert not any(c["published"] for c in second)
    await asyncio.to_thread(private_kafka.start)
    ids += [c["case_id"] for c in second]
    await eventually(
        lambda: all_dispatched(operator, ids),
        timeout=120,
        interval=0.5,
        what="every call dispatched after the second outage",
    )

    records = await read_topic(private_kafka.bootstrap, HELP_REQUESTED_TOPIC, expect=len(ids), timeout_s=30)
    seen = [r.key.decode() for r in records]
    assert set(seen) == set(ids)
    assert list(dict.fromkeys(seen)) == ids  # first appearances in the order the calls were taken

    coordinator = issue_token(TOKENS, sub="co-outage", role="coordinator", district="500103")
    async with httpx.AsyncClient(
        base_url=router.url, timeout=10, headers={"Authorization": f"Bearer {coordinator}"}
    ) as client:
        response = await client.get("/api/v1/coordinator/cases", params={"status": ["dispatched"]})
        assert response.status_code == 200, response.text
        known = [c["case_id"] for c in response.json() if c["case_id"] in ids]
    assert sorted(known) == ids  # each case exactly once in the router's state, however often it was sent

    with MongoClient[dict[str, Any]](stack.mongodb_url) as client:
        outbox = client[stack.databases()[0]]["outbox"]
        assert outbox.count_documents({}) == 0
