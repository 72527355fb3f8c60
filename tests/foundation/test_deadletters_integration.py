"""Dead letters visible and fixable (the admin API every service with Kafka has), and backlogs on
`/metrics` and in the coordinators' status view: against the real Kafka and store, with the router."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from pymongo import AsyncMongoClient

from common.deadletters import main as deadletters_cli
from contracts.events import HELP_REQUESTED_TOPIC
from tests.support.kafka import read_topic
from tests.support.router_harness import RouterHarness, running_router
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def router(
    kafka_bootstrap: str, mongodb_url: str, mongo_client: AsyncMongoClient
) -> AsyncIterator[RouterHarness]:
    database = f"test_dlq_{uuid.uuid4().hex[:10]}"
    try:
        async with running_router(kafka_bootstrap, mongodb_url, database) as harness:
            yield harness
    finally:
        await mongo_client.drop_database(database)


async def test_a_dead_letter_is_listed_shown_with_its_error_and_replayed_once(router: RouterHarness) -> None:
    topic = router.settings.topic(HELP_REQUESTED_TOPIC)
    key = f"poison-{uuid.uuid4().hex[:8]}".encode()
    await router.broker.publish({"case_id": "CQ-20260101-000000", "phone": "13912345678"}, topic=topic, key=key)
    admin = router.token("admin", district=None)

    async def listed() -> list[dict] | None:
        reply = await router.client.get("/api/v1/admin/dead-letters", headers=admin)
        assert reply.status_code == 200, reply.text
        return [d for d in reply.json() if d["key"] == key.decode()] or None

    [entry] = await eventually(listed, timeout=60, what="the poison record among the dead letters")
    assert entry["topic"] == f"{topic}.dlq" and entry["original_topic"] == topic
    assert entry["error_type"] == "ValidationError" and entry["attempts"] >= 1 and entry["service"] == "router"
    assert entry["replayed"] is False

    where = f"/api/v1/admin/dead-letters/{entry['topic']}/{entry['partition']}/{entry['offset']}"
    shown = (await router.client.get(where, headers=admin)).json()
    assert "CQ-20260101-000000" in shown["value_preview"]
    assert "13912345678" not in shown["value_preview"]  # personal numbers masked in the admin's view too
    assert shown["headers"]["x-dlq-original-topic"] == topic

    before = len(await read_topic(router.bootstrap, topic, expect=10_000, timeout_s=2))
    ref = {"topic": entry["topic"], "partition": entry["partition"], "offset": entry["offset"]}
    first = await router.client.post("/api/v1/admin/dead-letters/replay", json={"items": [ref]}, headers=admin)
    again = await router.client.post("/api/v1/admin/dead-letters/replay", json={"items": [ref]}, headers=admin)
    assert first.json()["replayed"] == 1 and first.json()["outcomes"][0]["to_topic"] == topic
    assert again.json()["replayed"] == 0 and again.json()["outcomes"][0]["outcome"] == "already_replayed"
    back = await read_topic(router.bootstrap, topic, expect=before + 1, timeout_s=10)
    replayed = [r for r in back if r.key == key and dict(r.headers or ()).get("x-replayed-from")]
    assert len(replayed) == 1  # on its original topic once, without the dead-letter headers
    assert not any(k.startswith("x-dlq-") for k, _ in replayed[0].headers)
    relisted = await router.client.get("/api/v1/admin/dead-letters", headers=admin)
    assert any(d["key"] == key.decode() and d["replayed"] for d in relisted.json())


async def test_only_an_admin_sees_dead_letters_and_coordinators_see_the_backlogs(router: RouterHarness) -> None:
    worker = router.token("dept_worker", department="civil_affairs")
    coordinator = router.token("coordinator")
    assert (await router.client.get("/api/v1/admin/dead-letters", headers=worker)).status_code == 403
    assert (await router.client.get("/api/v1/admin/dead-letters", headers=coordinator)).status_code == 403
    status = await router.client.get("/api/v1/status/delivery", headers=coordinator)
    assert status.status_code == 200
    figures = status.json()
    assert figures["service"] == "router" and figures["kafka_reachable"] is True
    groups = {lag["group"] for lag in figures["consumer_lag"]}
    assert router.settings.consumer_group in groups  # the intake's group, registered by its batch consumer
    dlq = f"{router.settings.topic(HELP_REQUESTED_TOPIC)}.dlq"
    assert figures["dead_letters"][dlq] >= 1  # the poison record of the test before
    assert "cases" in figures["outbox_backlog"]


async def test_metrics_carry_backlog_lag_and_dead_letter_figures(router: RouterHarness) -> None:
    text = (await router.client.get("/metrics")).text
    assert "kafka_figures_up 1" in text
    assert 'outbox_backlog_documents{collection="cases"}' in text
    assert f'consumer_lag_records{{group="{router.settings.consumer_group}"' in text
    assert 'dead_letter_records{topic="' in text


def test_the_command_line_asks_the_services_admin_api(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command line is a thin client of the same API: its request and its output."""
    seen: list[httpx.Request] = []

    def service(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=[{"topic": "t.dlq", "partition": 0, "offset": 3}])

    real_client = httpx.Client
    monkeypatch.setattr(httpx, "Client", lambda **kw: real_client(transport=httpx.MockTransport(service), **kw))
    assert deadletters_cli(["--url", "http://router", "--token", "tok", "list", "--topic", "t.dlq"]) == 0
    assert json.loads(capsys.readouterr().out) == [{"topic": "t.dlq", "partition": 0, "offset": 3}]
    assert seen[0].url.path == "/api/v1/admin/dead-letters" and seen[0].url.params["topic"] == "t.dlq"
    assert seen[0].headers["authorization"] == "Bearer tok"
