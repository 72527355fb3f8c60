"""The intake's typed answers decide, against the real Kafka and store: the help request and the dispatch
go through the relief consumer, and the officer reads the outcome and its reasons through the API
(P5.2b insured caller, P5.1 income fell because of the epidemic, P5.2 parameters changed by an admin)."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from common.kafka import event_headers
from contracts.events.base import Event
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.relief import GRANT_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from services.relief.app import create_app
from tests.relief.conftest import case_id, committed_past, grant_events, help_requested, relief_settings, token
from tests.support.events import dispatched
from tests.support.kafka import create_topics, unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def _through_relief(kafka_bootstrap, mongodb_url, db_name, events: list[Event], check):
    """Publish the events on topics of the test's own, start relief (its consumer included), wait until it
    committed past them, then run `check(app, client, ns)` against its API."""
    ns = f"{unique_name('relief-answers')}."
    await create_topics(
        kafka_bootstrap, *(ns + t for t in (HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC))
    )
    settings = relief_settings(kafka_bootstrap, mongodb_url, db_name, topic_namespace=ns)
    app = create_app(settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    last: dict[TopicPartition, int] = {}
    try:
        for event in events:
            meta = await producer.send_and_wait(
                ns + event.TOPIC,
                event.model_dump_json().encode(),
                key=event.key,
                headers=[(k, v.encode()) for k, v in event_headers(event).items()],
            )
            last[TopicPartition(meta.topic, meta.partition)] = meta.offset
    finally:
        await producer.stop()
    async with app.router.lifespan_context(app):
        for tp, offset in last.items():
            await eventually(
                partial(committed_past, kafka_bootstrap, settings.consumer_group, tp.topic, tp.partition, offset),
                timeout=90,
                what=f"relief to consume and commit {tp}",
            )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relief") as client:
            await check(app, client, ns)


async def test_p5_2b_insured_caller_gets_no_grant_and_the_officer_sees_why(kafka_bootstrap, mongodb_url, db_name):
    """P5.2b: the caller answered that they are insured against unemployment: the rule refuses (no grant, no
    cap), and the officer's list shows the reason, Chinese first with English."""
    case = case_id()
    answers = {"months_without_income": 4, "unemployment_insured": "yes", "cannot_return_due_to_epidemic": "yes"}
    events: list[Event] = [
        help_requested(case, "temp_assist_unemployed", months_without_income=4, attributes=answers),
        dispatched(case, needs=("temp_assist_unemployed",)),
    ]

    async def check(app, client, ns):
        listed = (await client.get(f"/api/v1/entitlements?case_id={case}", headers=token(app, "officer-a"))).json()
        [grant] = listed
        assert grant["_id"] == f"{case}:P5.2b" and grant["status"] == "rejected"
        assert grant["cap"] is None and grant["amount"] is None
        [reason] = [r for r in grant["reasons"] if "失业保险" in r]
        zh, en = reason.split(" | ")
        assert zh.startswith("已参加失业保险") and "covered by unemployment insurance" in en
        assert grant["facts"]["answers"]["unemployment_insured"] == "yes"
        assert grant["parameters"] == "CQ-2021-02@v1"
        assert grant["decisions"][0]["action"] == "rejected_by_rule"
        assert grant["decisions"][0]["parameters"] == "CQ-2021-02@v1"
        [rejected] = await grant_events(kafka_bootstrap, case, 1, topic=ns + GRANT_EVENTS_TOPIC)
        assert rejected["type"] == "grant.rejected" and "unemployment insurance" in rejected["reason"]

    await _through_relief(kafka_bootstrap, mongodb_url, db_name, events, check)


async def test_p5_1_income_fell_application_gets_the_simplified_review(kafka_bootstrap, mongodb_url, db_name):
    """P5.1: `income_fell_due_to_epidemic: yes` -> simplified review; approved undisputed, no public
    appraisal. A plain application beside it gets the standard review with the appraisal."""
    fell, plain = case_id(), case_id()
    events: list[Event] = [
        help_requested(fell, "dibao_application", attributes={"income_fell_due_to_epidemic": "yes"}),
        dispatched(fell, needs=("dibao_application",)),
        help_requested(plain, "dibao_application", attributes={"income_fell_due_to_epidemic": "no"}),
        dispatched(plain, needs=("dibao_application",)),
    ]

    async def check(app, client, ns):
        officer = token(app, "officer-a")
        doc = (await client.get(f"/api/v1/entitlements/{fell}:P5.1", headers=officer)).json()
        assert doc["sla_class"] == "dibao_fast_track" and doc["review_steps"] == [
            "application",
            "household_check",
            "approval",
        ]
        other = (await client.get(f"/api/v1/entitlements/{plain}:P5.1", headers=officer)).json()
        assert other["sla_class"] == "dibao_standard" and "public_appraisal" in other["review_steps"]
        r = await client.post(f"/api/v1/entitlements/{fell}:P5.1/approve", json={"contested": False}, headers=officer)
        assert r.status_code == 200, r.text
        approved = r.json()["decisions"][-1]
        assert approved["steps"] == ["application", "household_check", "approval"]
        assert approved["parameters"] == "CQ-2021-02@v1"

    await _through_relief(kafka_bootstrap, mongodb_url, db_name, events, check)
