"""Caller texts end to end (P6.2): notify as a real process on the real Kafka and store, sending through the
official Alibaba Cloud SMS SDK to a local SendSms stand-in. A consented call gets exactly two texts (its
dispatch, its resolution) although its events come twice and notify restarts; a call without consent
gets none; the phone is forgotten once the case is closed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pymongo import MongoClient
from pymongo.collection import Collection

from common.kafka import make_broker, publish_event
from common.settings import ServiceSettings
from contracts.events.hotline import HELP_REQUESTED_TOPIC, Caller, HelpRequested, Place
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseClosed
from tests.notify.test_sla_integration import coordinator, drop, notify_service, subscribed
from tests.notify.texts_standin import SendSmsStandIn, aliyun_env
from tests.support.events import dispatched, new_case_id, resolved
from tests.support.kafka import create_topics
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
PHONES = {True: "13900002222", False: "13900003333"}


@pytest.fixture
async def producer(kafka_bootstrap: str):
    await create_topics(kafka_bootstrap, CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC)
    broker = make_broker(ServiceSettings(service_name="notify-texts-it", kafka_bootstrap_servers=kafka_bootstrap))
    await broker.start()
    yield broker
    await broker.stop()


def call(case_id: str, at: datetime, consents: bool) -> HelpRequested:
    return HelpRequested(
        case_id=case_id,
        received_at=at,
        operator_id="op-1",
        caller=Caller(name="赵六", phone=PHONES[consents], consents_to_texts=consents),
        place=Place(district="500103"),
        needs=("homeless_cold",),
    )


def caller_records(url: str, case_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/api/v1/notifications", params={"case_id": case_id}, headers=coordinator(), timeout=10)
    if response.status_code == 404:  # notify has not taken the case's first event yet
        return []
    response.raise_for_status()
    return [n for n in response.json() if n["recipient"] == "caller"]


def settled(url: str, case_id: str, count: int) -> list[dict[str, Any]]:
    """The case's caller records once there are `count` and none is still pending; else nothing."""
    records = caller_records(url, case_id)
    return records if len(records) == count and all(r["status"] != "pending" for r in records) else []


async def test_a_consented_call_gets_two_texts_and_a_call_without_consent_none(
    kafka_bootstrap: str, mongodb_url: str, tmp_path, producer
) -> None:
    with SendSmsStandIn() as sms:
        stack = notify_service(kafka_bootstrap, mongodb_url, tmp_path, **aliyun_env(sms.url))
        try:
            stack.start()
            service = stack["notify"]
            await subscribed(producer, service.url)
            now = datetime.now(UTC)
            cases = {True: new_case_id(), False: new_case_id()}
            events: dict[bool, list[Any]] = {}
            for consents, cid in cases.items():
                events[consents] = [
                    call(cid, now, consents),
                    dispatched(cid, at=now),
                    resolved(cid, at=now + timedelta(minutes=20)),
                ]
                for event in events[consents]:
                    await publish_event(producer, event)
                await publish_event(producer, events[consents][1])  # the dispatch delivered twice
                await publish_event(producer, events[consents][2])  # and the resolution
            yes, no = cases[True], cases[False]
            texted = await eventually(lambda: settled(service.url, yes, 2), timeout=60, what="the two texts")
            assert [(r["kind"], r["status"]) for r in texted] == [
                ("caller_dispatched", "sent"),
                ("caller_resolved", "sent"),
            ]
            skipped = await eventually(lambda: settled(service.url, no, 2), timeout=60, what="the skipped texts")
            assert [(r["status"], r["attempts"][0]["skipped"]) for r in skipped] == [("skipped", "no consent")] * 2

            # A restart, and every event of the consented call once more; a close to know they were read.
            service.stop()
            for event in events[True]:
                await publish_event(producer, event)
            await publish_event(producer, CaseClosed(case_id=yes, actor="co-1", reason="办结归档"))
            service.start()
            service.wait_ready()

            def closed() -> bool:
                response = httpx.get(f"{service.url}/api/v1/cases/{yes}", headers=coordinator(), timeout=10)
                return response.status_code == 200 and response.json()["status"] == "closed"

            await eventually(closed, timeout=60, what="the close after the restart")
            assert settled(service.url, yes, 2)  # no third record, nothing pending

            sent = sms.of(yes)
            assert [m["template"] for m in sent] == ["SMS_900001", "SMS_900002"]
            assert sent[0]["phone"] == PHONES[True] and sent[0]["params"]["handler"] == "渝中区民政"
            assert sent[1]["params"] == {"case_id": yes, "outcome": "rescued"}
            assert sms.of(no) == [] and not [m for m in sms.refused if no in m["out_id"]]

            client: MongoClient[dict[str, Any]]
            with MongoClient(mongodb_url) as client:
                contacts: Collection[dict[str, Any]] = client[stack.databases()[0]]["contacts"]
                await eventually(  # closed, last text out: forgotten (an effect after the case's write)
                    lambda: contacts.find_one({"_id": yes}) is None, timeout=30, what="the phone to be forgotten"
                )
                assert "phone" not in (contacts.find_one({"_id": no}) or {})  # never kept without consent
            log = service.log_path.read_text(errors="replace")
            assert PHONES[True] not in log and PHONES[False] not in log
        finally:
            drop(stack, mongodb_url)
