"""Proactive discovery end to end on the real Kafka and store (P2.3 主动发现, 未诉先办): a registry import
that drops a household from dibao makes relief propose outreach; the hotline files it through its intake
as a proactive case (once per proposal, however often it is told); the router dispatches it like a call.
A care visit still not made two days after its due day does the same (P2.2 + P2.3)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from common.app import create_service_app
from common.kafka import publish_event
from contracts.events.care import CARE_EVENTS_TOPIC, OutreachProposed
from contracts.events.hotline import HelpRequested
from services.hotline import handlers as hotline_handlers
from services.hotline.app import startup as hotline_startup
from services.hotline.settings import Settings as HotlineSettings
from services.relief import api, care_api
from services.relief.app import startup as relief_startup
from tests.relief.conftest import TODAY, id_card, relief_settings, token
from tests.support.kafka import create_topics, unique_name
from tests.support.router_harness import RouterHarness, running_router
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


@dataclass
class Stack:
    router: RouterHarness
    relief: Any
    relief_client: httpx.AsyncClient
    hotline: Any

    @property
    def namespace(self) -> str:
        return self.router.settings.topic_namespace

    async def proactive_cases(self, rule_id: str) -> list[HelpRequested]:
        """The help requests the hotline published for proposals of `rule_id` (from the router's store)."""
        intakes = self.hotline.state.runtime.service.store.intakes
        docs = await intakes.find({"event.outreach.rule_id": rule_id}).to_list(None)
        return [HelpRequested.model_validate(doc["event"]) for doc in docs]


@pytest.fixture
async def stack(kafka_bootstrap: str, mongodb_url: str, mongo_client: Any) -> AsyncIterator[Stack]:
    databases = [f"test_{uuid.uuid4().hex[:12]}" for _ in range(3)]
    async with running_router(kafka_bootstrap, mongodb_url, databases[0]) as router:
        namespace = router.settings.topic_namespace
        care_topic = namespace + CARE_EVENTS_TOPIC
        await create_topics(kafka_bootstrap, care_topic, care_topic + ".dlq", partitions=2)
        relief = create_service_app(
            relief_settings(kafka_bootstrap, mongodb_url, databases[1], topic_namespace=namespace),
            title="relief-outreach-it",
            routers=[api.router, care_api.router],
            startup=relief_startup,
            wait_for_kafka=True,
        )
        hotline = create_service_app(
            HotlineSettings(
                kafka_bootstrap_servers=kafka_bootstrap,
                mongodb_url=mongodb_url,
                mongodb_database=databases[2],
                kafka_group_id=unique_name("hotline-outreach"),
                topic_namespace=namespace,
                environment="test",
            ),
            title="hotline-outreach-it",
            startup=hotline_startup,
            background=[hotline_handlers.outbox_relay, hotline_handlers.outreach_consumer],
            wait_for_kafka=True,
        )
        try:
            async with relief.router.lifespan_context(relief), hotline.router.lifespan_context(hotline):
                relief.state.runtime.service.clock = lambda: TODAY
                transport = httpx.ASGITransport(app=relief)
                async with httpx.AsyncClient(transport=transport, base_url="http://relief") as client:
                    yield Stack(router, relief, client, hotline)
        finally:
            for name in databases:
                await mongo_client.drop_database(name)
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                await admin.delete_topics([care_topic, care_topic + ".dlq"])
            finally:
                await admin.close()


def registry_csv(recipient: str, categories: str) -> bytes:
    return (
        "recipient_id,name,id_card,district,area,categories,approved_on,ended_on\n"
        f"{recipient},刘六,{id_card(77)},500103,urban,{categories},2020-05-01,\n"
    ).encode()


async def test_p2_3_a_household_dropped_from_dibao_gets_a_proactive_case_the_router_dispatches(stack: Stack):
    """P2.3: the registry import that drops R-DROP from dibao opens one proactive case (origin proactive,
    rule D-P2.3-DROPPED-FROM-DIBAO), dispatched to civil affairs of 500103; importing the same file again,
    or the proposal delivered twice, opens nothing more."""
    officer = token(stack.relief, "officer-a")
    recipient = f"R-DROP-{uuid.uuid4().hex[:6]}"

    async def upload(categories: str) -> None:
        files = {"file": ("registry.csv", registry_csv(recipient, categories), "text/csv")}
        r = await stack.relief_client.post("/api/v1/registry/import", headers=officer, files=files)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text

    await upload("dibao")  # first import: an old dibao record, nothing to find
    await upload("low_income")  # dropped from dibao

    async def one_case() -> list[HelpRequested] | None:
        found = await stack.proactive_cases("D-P2.3-DROPPED-FROM-DIBAO")
        return found or None

    [case] = await eventually(one_case, timeout=40, what="the proactive case filed by the hotline")
    assert case.origin == "proactive" and case.channel == "outreach"
    assert case.outreach is not None and case.outreach.household == recipient
    assert case.outreach.provisions == ("P2.3", "P2.1") and case.needs == ("other",)
    assert case.household_status == "low_income" and case.place.district == "500103"

    async def dispatched() -> dict[str, Any] | None:
        return await stack.router.task_in_queue("civil_affairs", case.case_id)

    task = await eventually(dispatched, timeout=40, what="the router's dispatch of the proactive case")
    assert task["role"] == "lead"

    await upload("low_income")  # the same file again: no change, no proposal
    proposal_id = case.outreach.proposal_id
    broker = stack.relief.state.runtime.broker
    again = OutreachProposed.model_validate(
        (await stack.relief.state.runtime.service.care.discovery.proposals.current([proposal_id]))[proposal_id].event
    )
    await publish_event(broker, again, topic=stack.namespace + CARE_EVENTS_TOPIC)  # a redelivery
    await asyncio.sleep(3)  # nothing to wait for: the point is that nothing more happens
    assert [c.case_id for c in await stack.proactive_cases("D-P2.3-DROPPED-FROM-DIBAO")] == [case.case_id]


async def test_p2_2_p2_3_a_visit_overdue_past_its_grace_opens_a_proactive_visit_case(stack: Stack):
    """P2.2 + P2.3: nobody visited; two days after the due day the sweep proposes outreach
    (D-P2.2-VISIT-OVERDUE, special_group_visit), which the router dispatches to civil affairs."""
    relief = stack.relief.state.runtime.service
    officer = token(stack.relief, "officer-a")
    recipient = f"R-OLD-{uuid.uuid4().hex[:6]}"
    files = {"file": ("registry.csv", registry_csv(recipient, "dibao"), "text/csv")}
    assert (await stack.relief_client.post("/api/v1/registry/import", headers=officer, files=files)).status_code == 200
    r = await stack.relief_client.post(
        "/api/v1/care/register",
        json={"recipient_id": recipient, "groups": ["elderly_alone"], "worker": "worker-a"},
        headers=officer,
    )
    assert r.status_code == 201, r.text
    due = TODAY + timedelta(days=7)
    for days_after in (1, 2, 3):  # missed on day 1; the rule's 2 days' grace ends on day 3
        relief.clock = lambda n=days_after: due + timedelta(days=n)
        await relief.care.sweep()

    async def one_case() -> list[HelpRequested] | None:
        return await stack.proactive_cases("D-P2.2-VISIT-OVERDUE") or None

    [case] = await eventually(one_case, timeout=40, what="the proactive visit case")
    assert case.needs == ("special_group_visit",) and case.special_groups == ("elderly_alone",)
    assert case.outreach is not None and case.outreach.household == f"R-{recipient}"
    assert await eventually(lambda: stack.router.task_in_queue("civil_affairs", case.case_id), timeout=40)
    await relief.care.sweep()
    assert len(await stack.proactive_cases("D-P2.2-VISIT-OVERDUE")) == 1
