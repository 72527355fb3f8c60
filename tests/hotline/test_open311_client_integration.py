"""Open311 GeoReport v2 interop, checked with an Open311 client library from PyPI (`georeport`).

The hotline runs as a real uvicorn process against the real Kafka and store (its topics under a unique
namespace); downstream events are published to Kafka and must show in what the client reads. The library
does not create requests, so POST goes through a plain form-encoded request, as the spec defines it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from georeport import GeoReport
from pymongo import MongoClient

from common.kafka import make_broker, publish_event
from common.settings import ServiceSettings
from contracts.catalogue import service_catalogue
from contracts.events import CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, SLA_EVENTS_TOPIC, Event
from contracts.events.hotline import HelpRequested
from contracts.events.notify import SlaWarningRaised
from contracts.events.router import Assignment, CaseDispatched, CaseResolved, Decision
from tests.support.kafka import create_topics, read_topic
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

API_KEY = "it-open311-" + uuid.uuid4().hex[:8]
NAMESPACE = f"it-{uuid.uuid4().hex[:8]}."


@pytest.fixture(scope="module")
def hotline(kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    asyncio.run(
        create_topics(
            kafka_bootstrap,
            *(
                NAMESPACE + t
                for t in (HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC)
            ),
        )
    )
    tmp: Path = tmp_path_factory.mktemp("open311")
    services = ServiceSet(
        kafka_bootstrap,
        mongodb_url,
        ("hotline",),
        tmp,
        extra_env={
            "HOTLINE_TOPIC_NAMESPACE": NAMESPACE,
            "HOTLINE_OPEN311_API_KEYS": json.dumps({API_KEY: "integration-test"}),
        },
    )
    try:
        services.start()
        yield services["hotline"].url
    finally:
        services.stop()
        with MongoClient[dict[str, Any]](mongodb_url) as client:
            for name in services.databases():
                client.drop_database(name)


async def publish(bootstrap: str, *events: Event) -> None:
    broker = make_broker(ServiceSettings(service_name="open311-test", kafka_bootstrap_servers=bootstrap))
    await broker.start()
    try:
        for event in events:
            await publish_event(broker, event, topic=NAMESPACE + event.TOPIC)
    finally:
        await broker.stop()


def post_request(url: str, **fields: str) -> httpx.Response:
    data = {
        "api_key": API_KEY,
        "service_code": "homeless_cold",
        "last_name": "赵",
        "first_name": "六",
        "phone": "13700001111",
        "description": "桥下有人露宿，很冷",
        "attribute[district]": "500106",
        "attribute[person_condition]": "conscious",
        "lat": "29.56",
        "long": "106.45",
    }
    data.update(fields)
    return httpx.post(f"{url}/open311/v2/requests.json", data=data, timeout=10)


def test_the_georeport_client_reads_services_and_definitions(hotline: str) -> None:
    client = GeoReport(f"{hotline}/open311/v2")
    services = client.get_service_list()
    assert [s["service_code"] for s in services] == [s.code for s in service_catalogue().services]
    definition = client.get_service_definition("temp_assist_unemployed")
    months = next(a for a in definition["attributes"] if a["code"] == "months_without_income")
    assert months["datatype"] == "number" and months["required"] is True
    xml = GeoReport(f"{hotline}/open311/v2", output_format="xml")
    assert [s["service_code"] for s in xml.get_service_list()][:2] == ["temp_assist_epidemic", "temp_assist_unemployed"]
    assert xml.get_service_definition("homeless_cold")["service_code"] == "homeless_cold"


async def test_a_posted_request_is_published_and_its_status_follows_downstream_events(
    hotline: str, kafka_bootstrap: str
) -> None:
    created = await asyncio.to_thread(post_request, hotline)
    assert created.status_code == 201, created.text
    request_id = created.json()[0]["service_request_id"]
    assert "110/119/120" in created.json()[0]["service_notice"]  # homeless in the cold: an emergency (P2.2)

    records = await read_topic(kafka_bootstrap, NAMESPACE + HELP_REQUESTED_TOPIC, expect=1)
    event = HelpRequested.model_validate_json(records[0].value)
    assert (event.case_id, event.channel, event.emergency) == (request_id, "open311", True)
    assert event.place.latitude == 29.56 and event.attributes == {"person_condition": "conscious"}

    client = GeoReport(f"{hotline}/open311/v2")
    fresh = await asyncio.to_thread(client.get_service_request, request_id)
    assert (fresh["status"], fresh["agency_responsible"], fresh["expected_datetime"]) == ("open", None, None)

    due = datetime.now(UTC) + timedelta(hours=2)
    await publish(
        kafka_bootstrap,
        CaseDispatched(
            case_id=request_id,
            district="500106",
            needs=("homeless_cold",),
            emergency=True,
            lead=Assignment(department="civil_affairs", district="500106", role="lead"),
            sla_class="emergency",
            decision=Decision(rule_ids=("R-TEST",)),
        ),
        SlaWarningRaised(
            case_id=request_id,
            clock="citizen",
            target="resolution",
            district="500106",
            due_at=due,
            sla_class="emergency",
            share_elapsed=0.5,
        ),
    )

    async def dispatched() -> dict | None:
        entry = await asyncio.to_thread(client.get_service_request, request_id)
        return entry if entry["agency_responsible"] and entry["expected_datetime"] else None

    entry = await eventually(dispatched, timeout=30, interval=0.3, what="agency and expected time via Open311")
    assert entry["agency_responsible"].startswith("沙坪坝区民政部门")
    assert datetime.fromisoformat(entry["expected_datetime"]) == due.replace(microsecond=0)
    assert entry["status_notes"].startswith("已派单")

    await publish(kafka_bootstrap, CaseResolved(case_id=request_id, actor="w1", outcome="已送救助站"))

    async def closed() -> bool:
        found = await asyncio.to_thread(client.get_service_requests, status="closed")
        return request_id in [r["service_request_id"] for r in found]

    await eventually(closed, timeout=30, interval=0.3, what="request closed via Open311")
    listed = await asyncio.to_thread(client.get_service_requests, service_request_id=request_id)
    assert [r["status"] for r in listed] == ["closed"]


def test_post_errors_are_the_spec_error_list(hotline: str) -> None:
    forbidden = post_request(hotline, api_key="dev-open311-key")  # the dev key is not accepted in test mode
    assert forbidden.status_code == 403 and forbidden.json()[0]["code"] == 403
    missing = post_request(hotline, **{"attribute[district]": "", "phone": ""})
    assert missing.status_code == 400
    assert {e["description"].split(":")[0] for e in missing.json()} == {"attribute[district]", "phone"}
