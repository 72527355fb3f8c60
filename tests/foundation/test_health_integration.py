"""/healthz says the process is alive; /readyz says whether Kafka and the store are reachable."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from common.app import create_service_app
from common.settings import ServiceSettings

pytestmark = pytest.mark.integration


def _ready(client: TestClient, expect: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/readyz")
        if response.status_code == expect or time.monotonic() > deadline:
            assert response.status_code == expect, response.json()
            return response.json()
        time.sleep(0.2)


def test_ready_when_kafka_and_store_answer(kafka_bootstrap: str, mongodb_url: str) -> None:
    settings = ServiceSettings(
        service_name="health-it", kafka_bootstrap_servers=kafka_bootstrap, mongodb_url=mongodb_url
    )
    with TestClient(create_service_app(settings, title="t")) as client:
        assert client.get("/healthz").json() == {"status": "ok"}
        assert _ready(client, 200) == {"status": "ready", "checks": {"store": True, "kafka": True}}


def _pings(client: TestClient) -> int:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    for line in response.text.splitlines():
        if line.startswith('store_commands_total{command="ping"}'):
            return int(line.split()[-1])
    return 0


def test_metrics_count_the_store_commands_the_process_sent(kafka_bootstrap: str, mongodb_url: str) -> None:
    settings = ServiceSettings(
        service_name="metrics-it", kafka_bootstrap_servers=kafka_bootstrap, mongodb_url=mongodb_url
    )
    with TestClient(create_service_app(settings, title="t")) as client:
        _ready(client, 200)  # /readyz pings the store
        before = _pings(client)
        client.get("/readyz")
        client.get("/readyz")
        assert before >= 1
        assert _pings(client) == before + 2


def test_not_ready_names_what_is_unreachable(mongodb_url: str) -> None:
    settings = ServiceSettings(service_name="health-it", kafka_bootstrap_servers="127.0.0.1:1", mongodb_url=mongodb_url)
    with TestClient(create_service_app(settings, title="t")) as client:
        assert client.get("/healthz").status_code == 200  # alive even though Kafka is not there
        body = _ready(client, 503, timeout=5)
    assert body["checks"] == {"store": True, "kafka": False}


def test_every_service_prunes_old_version_claims_in_the_background(mongodb_url: str) -> None:
    from datetime import UTC, datetime, timedelta

    from pymongo import MongoClient

    database = f"test_claims_{time.time_ns()}"
    client: MongoClient[dict[str, Any]] = MongoClient(mongodb_url)
    claims = client[database]["case_claims"]
    claims.insert_many(
        [{"_id": "CQ-1@1", "at": datetime.now(UTC) - timedelta(days=2)}, {"_id": "CQ-1@2", "at": datetime.now(UTC)}]
    )
    settings = ServiceSettings(
        service_name="claims-it",
        kafka_bootstrap_servers="127.0.0.1:1",
        mongodb_url=mongodb_url,
        mongodb_database=database,
    )
    try:
        with TestClient(create_service_app(settings, title="t")):
            deadline = time.monotonic() + 20
            while claims.count_documents({}) > 1 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert [c["_id"] for c in claims.find()] == ["CQ-1@2"]
    finally:
        client.drop_database(database)
        client.close()


def test_metrics_say_whether_what_a_service_loads_at_start_up_has_loaded(
    kafka_bootstrap: str, mongodb_url: str
) -> None:
    """A part loaded in the background (the hotline's repeat-caller memory) shows as `service_warmed` 0
    until it has loaded, then 1: what a benchmark or an operator waits for before counting on it."""
    import asyncio
    import threading

    from common.app import Runtime

    release = threading.Event()

    async def loading(runtime: Runtime[Any]) -> None:
        loaded = runtime.warm_up["index"] = asyncio.Event()
        while not release.is_set():
            await asyncio.sleep(0.05)
        loaded.set()
        await asyncio.Event().wait()

    def warmed(client: TestClient) -> list[str]:
        return [line for line in client.get("/metrics").text.splitlines() if line.startswith("service_warmed")]

    settings = ServiceSettings(service_name="warm-it", kafka_bootstrap_servers=kafka_bootstrap, mongodb_url=mongodb_url)
    with TestClient(create_service_app(settings, title="t", background=[loading])) as client:
        deadline = time.monotonic() + 10
        while not warmed(client) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert warmed(client) == ['service_warmed{part="index"} 0']
        release.set()
        while warmed(client) != ['service_warmed{part="index"} 1'] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert warmed(client) == ['service_warmed{part="index"} 1']
