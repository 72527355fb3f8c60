"""Hotline fixtures: the real app and store, with FastStream's TestKafkaBroker in place of Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from pymongo.asynchronous.database import AsyncDatabase

from common.app import Runtime
from common.auth import issue_token
from common.kafka import make_broker
from contracts.events import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC
from services.hotline import handlers
from services.hotline.app import create_app, startup
from services.hotline.intake import Hotline
from services.hotline.settings import Settings

TEST_API_KEY = "test-open311-key-0123"


def call(**overrides: Any) -> dict[str, Any]:
    """A valid operator intake body; override any top-level field."""
    body: dict[str, Any] = {
        "caller": {"name": "王五", "phone": "13812345678"},
        "place": {"district": "500103", "township": "解放碑街道", "address": "民族路 8 号"},
        "needs": ["temp_assist_major"],
        "household_status": "low_income",
        "description": "家里老人重病住院，医药费负担不起",
    }
    body.update(overrides)
    return body


@dataclass
class Harness:
    client: httpx.AsyncClient
    runtime: Runtime[Hotline]
    hotline: Hotline
    broker: KafkaBroker
    db: AsyncDatabase[dict[str, Any]]
    published: list[dict[str, Any]] = field(default_factory=list)

    def headers(self, role: str = "operator", sub: str = "op-1", district: str | None = "500103") -> dict[str, str]:
        token = issue_token(self.runtime.settings, sub=sub, role=role, district=district)
        return {"Authorization": f"Bearer {token}"}

    async def take(self, **overrides: Any) -> dict[str, Any]:
        response = await self.client.post("/api/v1/help-requests", json=call(**overrides), headers=self.headers())
        assert response.status_code == 201, response.text
        return response.json()

    async def deliver(self, *events: Any) -> None:
        """Downstream events arrive, in one batch, as the status consumer receives them from Kafka."""
        records = [
            SimpleNamespace(
                topic=event.TOPIC,
                partition=0,
                offset=n,
                key=event.key,
                headers=[],
                value=event.model_dump_json().encode(),
            )
            for n, event in enumerate(events)
        ]
        rejected = await handlers.apply_downstream_events(self.hotline.store, records)
        assert not rejected, rejected

    def published_types(self, case_id: str) -> list[str]:
        return [b["type"] for b in self.published if b.get("case_id") == case_id]


@pytest.fixture
async def harness(mongo_client: Any, db: AsyncDatabase[dict[str, Any]], db_name: str) -> AsyncIterator[Harness]:
    settings = Settings(
        mongodb_database=db_name, environment="test", open311_api_keys={TEST_API_KEY: "tester"}, publish_timeout_s=1.0
    )
    broker = make_broker(settings)
    runtime: Runtime[Hotline] = Runtime(settings=settings, broker=broker, mongo=mongo_client, db=db)
    published: list[dict[str, Any]] = []

    @broker.subscriber(HELP_REQUESTED_TOPIC, CASE_EVENTS_TOPIC, group_id="test-capture")
    async def capture(body: dict[str, Any]) -> None:
        published.append(body)

    runtime.bind(await startup(runtime))
    app = create_app(settings)
    app.state.runtime = runtime  # the lifespan would build this; here the test owns it
    async with TestKafkaBroker(broker):
        runtime.kafka_connected.set()
        await runtime.service.publisher.drain_once()  # what the relay does first: nothing left from before
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://hotline") as client:
            yield Harness(
                client=client, runtime=runtime, hotline=runtime.service, broker=broker, db=db, published=published
            )
