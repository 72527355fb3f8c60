"""The care register against the real store and Kafka (P2.2, P5.3): enrolment from the registry with a
named worker, the worker's list of visits due and overdue, visits recorded once, and a missed visit
reported once as `VisitMissed` on the care topic through the write path's outbox."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from common.app import create_service_app
from contracts.events.care import CARE_EVENTS_TOPIC, OutreachProposed
from services.relief import api, care_api, desk_api
from services.relief.app import startup
from services.relief.records import RegistryRecord
from tests.relief.conftest import TODAY, relief_settings, token
from tests.support.kafka import create_topics, read_topic
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@pytest.fixture
async def care_app(
    kafka_bootstrap: str, mongodb_url: str, db_name: str
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    await create_topics(kafka_bootstrap, CARE_EVENTS_TOPIC, partitions=3)
    settings = relief_settings(kafka_bootstrap, mongodb_url, db_name)
    app = create_service_app(
        settings,
        title="relief-care-test",
        routers=[api.router, desk_api.router, care_api.router, api.page],
        startup=startup,
        wait_for_kafka=True,
    )
    async with app.router.lifespan_context(app):
        app.state.runtime.service.clock = lambda: TODAY
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relief") as client:
            yield app, client


async def in_registry(app: Any, *categories: str, district: str = "500103") -> str:
    recipient = f"R-{uuid.uuid4().hex[:10]}"
    record = RegistryRecord.model_validate(
        {
            "_id": recipient,
            "name": "张三",
            "district": district,
            "area": "urban",
            "categories": list(categories),
            "approved_on": "2020-05-01",
        }
    )
    await app.state.runtime.service.store.upsert_registry([record])
    return recipient


async def care_events(kafka: str, entry_id: str, expect: int) -> list[dict]:
    async def probe():
        records = await read_topic(kafka, CARE_EVENTS_TOPIC, expect=10**9, timeout_s=1.5)
        found = list(
            {e["event_id"]: e for e in (json.loads(r.value) for r in records if r.key == entry_id.encode())}.values()
        )
        return found if len(found) >= expect else None

    return await eventually(probe, timeout=30, what=f"{expect} care events of {entry_id}")


async def test_p5_3_a_worker_sees_their_people_and_a_missed_visit_is_reported_once(care_app, kafka_bootstrap):
    """P5.3 + P2.2: enrolled from the registry (a tekun person gets the tekun group), named worker-a; the
    visit due is listed for worker-a alone; past its day the sweep publishes one VisitMissed, however
    often it runs; a visit recorded afterwards moves the due day and a retry records nothing twice."""
    app, client = care_app
    relief = app.state.runtime.service
    recipient = await in_registry(app, "tekun")
    officer = token(app, "officer-a")
    r = await client.post(
        "/api/v1/care/register",
        json={"recipient_id": recipient, "groups": ["elderly_alone"], "worker": "worker-a", "worker_name": "王社工"},
        headers=officer,
    )
    assert r.status_code == 201, r.text
    entry = r.json()
    entry_id = entry["id"]
    assert entry["groups"] == ["elderly_alone", "tekun"] and entry["worker_shown"] == "王社工（worker-a）"
    assert entry["rule_id"] == "V-P2.2-ELDERLY-ALONE" and entry["provisions"] == ["P2.2"]
    due_on = date.fromisoformat(entry["next_due_on"])
    assert due_on == TODAY + timedelta(days=7) and entry["due"] == "scheduled"
    body = {"recipient_id": recipient, "groups": ["disabled"], "worker": "x"}
    again = await client.post("/api/v1/care/register", json=body, headers=officer)
    assert again.status_code == 409 and again.json()["code"] == "already_enrolled"

    worker_a = token(app, "worker-a", role="dept_worker")
    worker_b = token(app, "worker-b", role="dept_worker")
    mine = (await client.get("/api/v1/care/mine", headers=worker_a)).json()
    assert [e["id"] for e in mine["entries"]] == [entry_id] and mine["overdue"] == 0
    assert (await client.get("/api/v1/care/mine", headers=worker_b)).json()["entries"] == []
    assert (await client.get(f"/api/v1/care/register/{entry_id}", headers=worker_b)).status_code == 403

    relief.clock = lambda: due_on + timedelta(days=1)  # the due day is over, nobody visited
    mine = (await client.get("/api/v1/care/mine", headers=worker_a)).json()
    assert mine["overdue"] == 1 and mine["entries"][0]["due"] == "overdue"
    assert await relief.care.sweep() == 1
    assert await relief.care.sweep() == 0  # once per missed visit
    [missed] = await care_events(kafka_bootstrap, entry_id, 1)
    assert missed["type"] == "care.visit_missed" and missed["worker"] == "worker-a"
    assert missed["due_on"] == due_on.isoformat() and missed["rule_id"] == "V-P2.2-ELDERLY-ALONE"
    assert missed["district"] == "500103" and missed["provisions"] == ["P2.2"]

    visit = {"visited_on": (due_on + timedelta(days=1)).isoformat(), "mode": "in_person", "outcome": "well"}
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json=visit, headers=worker_a)
    assert r.status_code == 201 and r.json()["recorded"] is True
    assert r.json()["entry"]["next_due_on"] == (due_on + timedelta(days=8)).isoformat()
    assert r.json()["entry"]["missed"] == [due_on.isoformat()] and r.json()["entry"]["due"] == "scheduled"
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json=visit, headers=worker_a)
    assert r.status_code == 200 and r.json()["recorded"] is False and r.json()["entry"]["visit_count"] == 1
    found = {**visit, "mode": "phone", "outcome": "needs_found", "needs": ["medical_aid"], "note": "腿伤未愈"}
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json=found, headers=worker_a)
    assert r.status_code == 201, r.text
    proposal_id = r.json()["visit"]["case_proposal"]  # P2.3: a need found on a visit opens a case
    assert proposal_id == f"D-P2.2-VISIT-NEEDS-FOUND|{entry_id}|{visit['visited_on']}|worker-a|phone"
    proposed = (await relief.care.discovery.proposals.current([proposal_id]))[proposal_id]
    assert proposed.event["needs"] == ["medical_aid"] and proposed.event["worker"] == "worker-a"
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json=found, headers=worker_a)  # a retry
    assert r.status_code == 200 and r.json()["visit"]["case_proposal"] == proposal_id
    assert await relief.care.discovery.propose([OutreachProposed.model_validate(proposed.event)]) == 0
    [event] = [e for e in await care_events(kafka_bootstrap, proposal_id, 1) if e["type"] == "care.outreach_proposed"]
    assert event["rule_id"] == "D-P2.2-VISIT-NEEDS-FOUND" and event["place"]["district"] == "500103"
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json={**found, "needs": ["x"]}, headers=worker_a)
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("needs")
    history = (await client.get(f"/api/v1/care/register/{entry_id}/visits", headers=officer)).json()
    assert sorted(v["mode"] for v in history) == ["in_person", "phone"]  # the same day: either order
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json=visit, headers=worker_b)
    assert r.status_code == 403


async def test_p2_2_bad_enrolment_and_visit_input_names_the_field(care_app):
    """P2.2: an unknown group, both sources at once or neither, or a visit finding needs without naming them: 422."""
    app, client = care_app
    officer = token(app, "officer-a")
    recipient = await in_registry(app, "dibao")
    r = await client.post(
        "/api/v1/care/register", json={"recipient_id": recipient, "groups": ["giants"], "worker": "w"}, headers=officer
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("groups")
    r = await client.post(
        "/api/v1/care/register",
        json={"recipient_id": recipient, "case_id": "CQ-20210320-000001", "groups": ["disabled"], "worker": "w"},
        headers=officer,
    )
    assert r.status_code == 422 and "exactly one" in r.json()["errors"][0]["reason_en"]
    assert r.json()["errors"][0]["field"] == "case_id"  # the form marks the field
    r = await client.post("/api/v1/care/register", json={"groups": ["disabled"], "worker": "w"}, headers=officer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "case_id"
    other = token(app, "officer-c", district="500106")
    r = await client.post(
        "/api/v1/care/register", json={"recipient_id": recipient, "groups": ["disabled"], "worker": "w"}, headers=other
    )
    assert r.status_code == 403
    body = {"recipient_id": recipient, "groups": ["disabled"], "worker": "w"}
    r = await client.post("/api/v1/care/register", json=body, headers=officer)
    entry_id = r.json()["id"]
    bad = {"visited_on": TODAY.isoformat(), "mode": "in_person", "outcome": "needs_found"}
    r = await client.post(f"/api/v1/care/register/{entry_id}/visits", json=bad, headers=officer)
    assert r.status_code == 422 and r.json()["field"] == "needs"
