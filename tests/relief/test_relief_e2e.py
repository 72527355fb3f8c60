"""End to end with relief as a real process: events in over Kafka, an officer works over HTTP, the
process is killed (SIGKILL) and restarted, and nothing is proposed or paid twice."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from common.auth import issue_token
from common.kafka import event_headers
from common.settings import ServiceSettings
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.relief import GRANT_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from tests.relief.conftest import case_id, committed_past, help_requested
from tests.support.events import dispatched
from tests.support.kafka import create_topics
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e
TOKENS = ServiceSettings(service_name="e2e")


@pytest.fixture
def relief_process(kafka_bootstrap: str, mongodb_url: str, tmp_path):
    stack = ServiceSet(kafka_bootstrap, mongodb_url, ("relief",), tmp_path)
    with stack:
        yield stack


async def publish(kafka: str, *events) -> list[tuple[str, int, int]]:
    """Publish; returns (topic, partition, offset) of each record."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    sent = []
    try:
        for event in events:
            meta = await producer.send_and_wait(
                event.TOPIC,
                event.model_dump_json().encode(),
                key=event.key,
                headers=[(k, v.encode()) for k, v in event_headers(event).items()],
            )
            sent.append((meta.topic, meta.partition, meta.offset))
    finally:
        await producer.stop()
    return sent


async def test_officer_pays_once_across_a_killed_and_restarted_relief(relief_process, kafka_bootstrap):
    await create_topics(kafka_bootstrap, HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC)
    relief = relief_process["relief"]
    officer = {
        "Authorization": "Bearer " + issue_token(TOKENS, sub="officer-e2e", role="relief_officer", district="500103")
    }
    case = case_id()
    needs = ("temp_assist_unemployed",)
    help_ = help_requested(case, *needs, months_without_income=3, special_groups=("unemployed_uninsured",))
    await publish(kafka_bootstrap, help_, dispatched(case, needs=needs))
    url = f"{relief.url}/api/v1/entitlements/{case}:P5.2b"

    async def proposed():
        async with httpx.AsyncClient(timeout=10) as client:
            r = await client.get(url, headers=officer)
            return r.json() if r.status_code == 200 else None

    doc = await eventually(proposed, timeout=90, what="relief to propose the P5.2b grant")
    assert doc["status"] == "proposed" and doc["cap"] == "1240.00"
    async with httpx.AsyncClient(timeout=10) as client:
        assert (await client.post(f"{url}/approve", json={"amount_yuan": "900.00"}, headers=officer)).status_code == 200
        paid = await client.post(
            f"{url}/payments", json={"period": "once", "payment_reference": "B-1"}, headers=officer
        )
        assert paid.status_code == 201

    relief.stop("kill")  # SIGKILL: nothing shut down cleanly
    relief.start()
    relief.wait_ready()
    group = relief.env["RELIEF_KAFKA_GROUP_ID"]
    for topic, partition, offset in await publish(kafka_bootstrap, help_, dispatched(case, needs=needs)):  # again
        await eventually(
            partial(committed_past, kafka_bootstrap, group, topic, partition, offset),
            timeout=90,
            what="the restarted relief to handle the redelivered events",
        )

    async with httpx.AsyncClient(timeout=10) as client:
        again = await client.post(
            f"{url}/payments", json={"period": "once", "payment_reference": "B-2"}, headers=officer
        )
        assert again.status_code == 200 and again.json()["entry"]["payment_reference"] == "B-1"
        ledger = (await client.get(f"{relief.url}/api/v1/cases/{case}/ledger", headers=officer)).json()
        assert [e["amount"] for e in ledger["entries"]] == ["900.00"]
        listed = (await client.get(f"{relief.url}/api/v1/entitlements?case_id={case}", headers=officer)).json()
        assert [(e["rule_id"], e["status"]) for e in listed] == [("P5.2b", "paid")]
