"""Notify as a real process against the real Kafka and store: warning, breach, escalation, alerts and
caller texts, one text per event under redelivery, and timers that survive a SIGKILL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient

from common.auth import issue_token
from common.kafka import make_broker, publish_event
from common.settings import ServiceSettings
from contracts.events.hotline import Caller, HelpRequested, Place
from contracts.events.notify import SLA_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from tests.notify.conftest import fast_policy
from tests.support.capture import CaptureServer, of_case, sla_events
from tests.support.events import dispatched, new_case_id
from tests.support.kafka import create_topics
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
TOKENS = ServiceSettings(service_name="notify-it")
PHONE = "13900001111"
FAST = "test_fast"  # a class measured in seconds, only in the test policy


def coordinator() -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(TOKENS, sub='co-city', role='coordinator', district='city')}"}


@pytest.fixture
async def producer(kafka_bootstrap: str):
    await create_topics(kafka_bootstrap, CASE_LIFECYCLE_TOPIC, SLA_EVENTS_TOPIC)
    broker = make_broker(ServiceSettings(service_name="notify-it-producer", kafka_bootstrap_servers=kafka_bootstrap))
    await broker.start()
    yield broker
    await broker.stop()


def notify_service(kafka: str, mongodb_url: str, tmp_path, **env: str) -> ServiceSet:
    # Start at the topics' end: the shared topics' history is other tests' business.
    base = {
        "NOTIFY_KAFKA_START_FROM": "latest",
        "NOTIFY_SWEEP_INTERVAL_S": "0.2",
        "NOTIFY_TIMER_BUCKET_S": "5",
        "NOTIFY_DELIVERY_BACKOFF_INITIAL_S": "0.2",
    }
    return ServiceSet(kafka, mongodb_url, ("notify",), tmp_path, extra_env={**base, **env})


async def subscribed(producer, url: str) -> None:
    """Wait until notify reads the lifecycle and help-request topics (it starts at their end, so events
    published before its consumers are assigned would be missed): probes are published until seen."""
    probes = {new_case_id(): "lifecycle", new_case_id(): "help"}

    async def seen() -> bool:
        missing = []
        for probe, kind in probes.items():
            response = httpx.get(f"{url}/api/v1/cases/{probe}", headers=coordinator(), timeout=10)
            if response.status_code != 200:
                missing.append((probe, kind))
        for probe, kind in missing:
            at = datetime.now(UTC)
            if kind == "lifecycle":
                await publish_event(producer, dispatched(probe, at=at))
            else:
                await publish_event(
                    producer,
                    HelpRequested(
                        case_id=probe,
                        received_at=at,
                        operator_id="op-probe",
                        caller=Caller(name="探针", phone="13900000000"),
                        place=Place(district="500103"),
                        needs=("special_group_visit",),
                    ),
                )
        return not missing

    await eventually(seen, timeout=60, interval=1.0, what="notify to subscribe to its topics")


def drop(stack: ServiceSet, mongodb_url: str) -> None:
    stack.stop()
    client: MongoClient[dict[str, Any]]
    with MongoClient(mongodb_url) as client:
        for name in stack.databases():
            client.drop_database(name)


async def test_warning_breach_escalation_alerts_and_one_text_under_redelivery(
    kafka_bootstrap: str, mongodb_url: str, tmp_path, producer
) -> None:
    policy = fast_policy(tmp_path, sign_for="PT4S", resolution="PT6S", escalation=("PT0S", "PT1S", "PT2S"))
    with CaptureServer() as capture:
        stack = notify_service(
            kafka_bootstrap,
            mongodb_url,
            tmp_path,
            NOTIFY_SLA_POLICY_PATH=str(policy),
            NOTIFY_SMS_GATEWAY_URL=f"{capture.url}/sms",
            NOTIFY_ALERT_WEBHOOK_URL=f"{capture.url}/webhook",
        )
        try:
            stack.start()
            url = stack["notify"].url
            await subscribed(producer, url)
            async with sla_events(kafka_bootstrap) as seen:
                cid, now = new_case_id(), datetime.now(UTC)
                capture.fail_first[cid] = 1  # the gateway fails once: the text is retried with backoff
                call = HelpRequested(
                    case_id=cid,
                    received_at=now,
                    operator_id="op-1",
                    caller=Caller(name="王五", phone=PHONE, consents_to_texts=True),  # P6.2: texts with consent
                    place=Place(district="500103"),
                    needs=("special_group_visit",),
                )
                await publish_event(producer, call)
                event = dispatched(cid, at=now, sla_class=FAST)
                for _ in range(3):  # the same event delivered three times
                    await publish_event(producer, event)
                await publish_event(producer, dispatched(cid, at=now, sla_class=FAST))  # republished: new id

                def escalated_to_city():
                    return of_case(seen, cid, type="sla.escalated", tier="city_coordinator", target="resolution")

                await eventually(escalated_to_city, timeout=40, what="the city coordinator escalation")
                mine = of_case(seen, cid)
                warnings = of_case(seen, cid, type="sla.warning", clock="department", target="sign_for")
                breaches = of_case(seen, cid, type="sla.breached", clock="department", target="sign_for")
                assert len(warnings) == 1 and warnings[0]["share_elapsed"] == 0.75
                assert len(breaches) == 1 and breaches[0]["department"] == "civil_affairs"
                tiers = [e["tier"] for e in mine if e["type"] == "sla.escalated" and e["target"] == "resolution"]
                assert tiers == ["department_head", "district_coordinator", "city_coordinator"]
                assert seen.index(warnings[0]) < seen.index(breaches[0])  # one partition: in firing order
                assert all(e["rule_id"] and e["provisions"] for e in mine)

            async def delivered() -> list[dict]:
                response = httpx.get(f"{url}/api/v1/notifications", params={"case_id": cid}, headers=coordinator())
                notes = response.json()
                pending = [n for n in notes if n["status"] == "pending"]
                return notes if notes and not pending else []

            notes = await eventually(delivered, timeout=30, what="every notification of the case to be delivered")
            texts = [n for n in notes if n["recipient"] == "caller"]
            assert [n["kind"] for n in texts] == ["caller_dispatched"]
            assert [a["ok"] for a in texts[0]["attempts"]] == [False, True]  # retried after the 503
            sms = capture.of("/sms", cid)
            assert len(sms) == 1 and sms[0]["to"] == PHONE and cid in sms[0]["text"]
            alerts = {b["recipient"] for b in capture.of("/webhook", cid)}
            assert {
                "department:civil_affairs:500103",
                "department_head:civil_affairs:500103",
                "coordinator:500103",
                "coordinator:city",
            } <= alerts
            assert PHONE not in stack["notify"].log_path.read_text(errors="replace")
        finally:
            drop(stack, mongodb_url)


async def test_timer_pending_when_the_process_is_killed_fires_after_restart(
    kafka_bootstrap: str, mongodb_url: str, tmp_path, producer
) -> None:
    policy = fast_policy(tmp_path, sign_for="PT12S", resolution="PT60S")
    stack = notify_service(kafka_bootstrap, mongodb_url, tmp_path, NOTIFY_SLA_POLICY_PATH=str(policy))
    try:
        stack.start()
        service = stack["notify"]
        await subscribed(producer, service.url)
        async with sla_events(kafka_bootstrap) as seen:
            cid, now = new_case_id(), datetime.now(UTC)
            await publish_event(producer, dispatched(cid, at=now, sla_class=FAST))

            async def clock_started() -> bool:
                response = httpx.get(f"{service.url}/api/v1/cases/{cid}", headers=coordinator())
                return response.status_code == 200

            await eventually(clock_started, timeout=30, what="the clock to start")
            service.stop("kill")  # SIGKILL while the sign-for breach (due 12 s after dispatch) is pending
            sign_due = now + timedelta(seconds=12)
            assert datetime.now(UTC) < sign_due, "notify took too long to start the clock; nothing was pending"
            await eventually(
                lambda: datetime.now(UTC) > sign_due + timedelta(seconds=1),
                timeout=15,
                what="the deadline to pass while notify is down",
            )
            assert of_case(seen, cid, type="sla.breached") == []
            service.start()
            service.wait_ready()
            breach = await eventually(
                lambda: of_case(seen, cid, type="sla.breached", clock="citizen", target="sign_for"),
                timeout=60,
                what="the breach after the restart",
            )
            assert datetime.fromisoformat(breach[0]["due_at"]) <= sign_due + timedelta(milliseconds=5)
            await asyncio.sleep(0)  # let the pump deliver anything already fetched
            assert len(of_case(seen, cid, type="sla.breached", clock="citizen", target="sign_for")) == 1
    finally:
        drop(stack, mongodb_url)
