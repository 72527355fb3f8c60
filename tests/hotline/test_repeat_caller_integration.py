"""One phone calling hundreds of times at once (a community worker reporting household after household):
every call gets its own case number, is stored and published once, and the repeat-caller lists stay right.

The hotline runs as a real uvicorn process against the real Kafka and store, on topics of its own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from common.auth import issue_token
from common.settings import ServiceSettings
from contracts.events import CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, SLA_EVENTS_TOPIC
from contracts.events.hotline import HelpRequested
from services.hotline.settings import Settings
from services.hotline.store import CASES_PER_KEY, MAX_MATCHES
from tests.support.kafka import create_topics, read_topic
from tests.support.processes import ServiceProcess, ServiceSet, free_port

pytestmark = pytest.mark.integration

NAMESPACE = f"it-{uuid.uuid4().hex[:8]}."
CALLS = 200
PHONE = "13812345678"


@pytest.fixture(scope="module")
def hotline(
    kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, ServiceSet]]:
    asyncio.run(
        create_topics(
            kafka_bootstrap,
            *(
                NAMESPACE + t
                for t in (HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC)
            ),
        )
    )
    tmp: Path = tmp_path_factory.mktemp("repeat-caller")
    with ServiceSet(
        kafka_bootstrap,
        mongodb_url,
        ("hotline",),
        tmp,
        # This test is about correctness when 200 calls are in flight at once, not the accept bound
        # (test_overload_integration): every call waits its turn here.
        extra_env={"HOTLINE_TOPIC_NAMESPACE": NAMESPACE, "HOTLINE_ACCEPT_TIMEOUT_S": "30"},
    ) as services:
        yield services["hotline"].url, services.databases()[0], services


def household(n: int) -> dict[str, Any]:
    return {
        "caller": {"name": "刘网格", "phone": PHONE},
        "place": {"district": "500103", "township": "解放碑街道", "address": f"民族路 {n} 号"},
        "needs": ["temp_assist_major"],
        "household_status": "low_income",
        "description": f"第 {n} 户：老人重病住院，医药费负担不起",
    }


def operator() -> dict[str, str]:
    token = issue_token(
        ServiceSettings(service_name="hotline", environment="test"), sub="op-7", role="operator", district="500103"
    )
    return {"Authorization": f"Bearer {token}"}


async def test_one_phone_calling_200_times_at_once_gets_200_cases_and_right_repeat_caller_lists(
    hotline: tuple[str, str, ServiceSet], kafka_bootstrap: str, mongodb_url: str
) -> None:
    url, database, _ = hotline
    # No timed assert: the generous timeout only keeps a wedged intake from hanging the suite.
    async with httpx.AsyncClient(
        base_url=url, headers=operator(), timeout=180, limits=httpx.Limits(max_connections=CALLS)
    ) as client:
        responses = await asyncio.gather(
            *(client.post("/api/v1/help-requests", json=household(n)) for n in range(CALLS))
        )
        assert [r.status_code for r in responses] == [201] * CALLS, next(
            r.text for r in responses if r.status_code != 201
        )
        accepted = [r.json() for r in responses]
        case_ids = {a["case_id"] for a in accepted}
        assert len(case_ids) == CALLS

        mongo: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True)
        try:
            intakes = await mongo[database]["intakes"].find({}, {"received_at": 1}).to_list()
        finally:
            await mongo.close()
        assert sorted(d["_id"] for d in intakes) == sorted(case_ids)  # each call stored, once
        received_at = {d["_id"]: d["received_at"] for d in intakes}
        records = await read_topic(kafka_bootstrap, NAMESPACE + HELP_REQUESTED_TOPIC, expect=CALLS)
        published = [HelpRequested.model_validate_json(r.value).case_id for r in records]
        assert sorted(published) == sorted(case_ids)  # each published, once

        for taken in accepted:
            duplicates = taken["possible_duplicates"]
            listed = [d["case_id"] for d in duplicates]
            assert len(listed) == len(set(listed)) <= MAX_MATCHES
            assert taken["case_id"] not in listed and set(listed) <= case_ids
            assert all(d["matched_on"] == ["phone"] for d in duplicates)  # every household differs
            assert listed == sorted(listed, key=received_at.__getitem__, reverse=True)
        # Each call reads the index as it was when its turn came: up to `intake_concurrency` calls are taken
        # at once, so a call waiting for its turn has at least that many fewer calls before it filed. Every
        # call after the first `intake_concurrency + MAX_MATCHES` sees a full list.
        full_after = Settings().intake_concurrency + MAX_MATCHES
        assert sum(len(a["possible_duplicates"]) == MAX_MATCHES for a in accepted) >= CALLS - full_after

        by_phone = await client.get("/api/v1/cases", params={"phone": PHONE, "reason": "来电人查询进度"})
        assert by_phone.status_code == 200
        newest = sorted(case_ids, reverse=True)
        assert [c["case_id"] for c in by_phone.json()] == newest[:CASES_PER_KEY]

        one_more = await client.post("/api/v1/help-requests", json=household(CALLS))
        assert one_more.status_code == 201
        candidates = sorted(newest[: MAX_MATCHES * 2], key=received_at.__getitem__, reverse=True)
        assert [d["case_id"] for d in one_more.json()["possible_duplicates"]] == candidates[:MAX_MATCHES]


async def wait_for_log(process: ServiceProcess, text: str, timeout: float = 60) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in process.log_path.read_text(errors="replace"):
        assert asyncio.get_running_loop().time() < deadline, f"{text!r} not logged:\n{process.log_tail()}"
        await asyncio.sleep(0.2)


async def test_a_second_hotline_process_knows_the_calls_the_first_takes(
    hotline: tuple[str, str, ServiceSet], tmp_path: Path
) -> None:
    """Two hotline processes on one store: each answers repeat-caller lookups from memory, and learns the
    other's calls from the help-request topic (no store read on the call's path)."""
    url, _, services = hotline
    first = services["hotline"]
    second = ServiceProcess("hotline", free_port(), dict(first.env), tmp_path / "hotline-2.log")
    second.start()
    phone = "13900001111"
    try:
        second.wait_ready()
        await wait_for_log(first, "caller index loaded into memory")
        await wait_for_log(second, "caller index loaded into memory")
        async with httpx.AsyncClient(headers=operator(), timeout=60) as client:

            def call(n: int) -> dict[str, Any]:
                return {**household(1000 + n), "caller": {"name": "赵来电", "phone": phone}}

            earlier = (await client.post(f"{url}/api/v1/help-requests", json=call(1))).json()["case_id"]
            deadline = asyncio.get_running_loop().time() + 30
            while True:  # the first's call reaches the second through Kafka, not through its store
                listed = await client.get(
                    f"{second.url}/api/v1/cases", params={"phone": phone, "reason": "来电人查询进度"}
                )
                assert listed.status_code == 200, listed.text
                if [c["case_id"] for c in listed.json()] == [earlier]:
                    break
                assert asyncio.get_running_loop().time() < deadline, listed.json()
                await asyncio.sleep(0.2)
            taken = await client.post(f"{second.url}/api/v1/help-requests", json=call(2))
            assert taken.status_code == 201, taken.text
            assert [d["case_id"] for d in taken.json()["possible_duplicates"]] == [earlier]
            later = taken.json()["case_id"]
            # ... and the other way round; the second filed its slot after the first's, not over it
            deadline = asyncio.get_running_loop().time() + 30
            while True:
                again = await client.post(f"{url}/api/v1/help-requests", json=call(3))
                assert again.status_code == 201, again.text
                seen = [d["case_id"] for d in again.json()["possible_duplicates"]]
                if later in seen:
                    break
                assert asyncio.get_running_loop().time() < deadline, seen
                await asyncio.sleep(0.2)
            assert earlier in seen
    finally:
        second.stop()
