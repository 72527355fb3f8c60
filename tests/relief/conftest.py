"""Relief test fixtures: the app in-process against the real store and Kafka, events, tokens."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from functools import partial
from typing import Any

import httpx
import pytest

from common.app import create_service_app
from common.auth import issue_token
from contracts.events.relief import GRANT_EVENTS_TOPIC
from services.relief import api, desk_api
from services.relief.app import startup
from services.relief.domain.registry import id_card_check_char
from services.relief.settings import Settings
from tests.support import events
from tests.support.events import new_case_id
from tests.support.kafka import read_topic, unique_name
from tests.support.waiting import eventually

TODAY = date(2021, 3, 20)


def id_card(n: int) -> str:
    first17 = f"500103198001{n:05d}"
    return first17 + id_card_check_char(first17)


def case_id(seq: int | None = None) -> str:
    return new_case_id(TODAY, seq)


# Calls received on the day relief's reference data is dated for.
help_requested = partial(events.help_requested, at=datetime(2021, 2, 15, 9, 30, tzinfo=UTC))


def relief_settings(kafka: str, mongodb_url: str, db_name: str, **kw: Any) -> Settings:
    return Settings(
        kafka_bootstrap_servers=kafka,
        mongodb_url=mongodb_url,
        mongodb_database=db_name,
        kafka_group_id=unique_name("relief-test"),
        environment="test",
        log_json=True,
        major_second_approval_above_yuan="3000",
        outbox_grace_s=0.5,
        outbox_sweep_interval_s=0.2,
        **kw,
    )


@pytest.fixture
async def relief_app(
    kafka_bootstrap: str, mongodb_url: str, db_name: str
) -> AsyncIterator[tuple[Any, httpx.AsyncClient]]:
    """The relief app (HTTP routes, store, broker, outbox sweeper; no consumer), clock fixed at TODAY."""
    settings = relief_settings(kafka_bootstrap, mongodb_url, db_name)
    app = create_service_app(
        settings,
        title="relief-test",
        routers=[api.router, desk_api.router, api.page],
        startup=startup,
        wait_for_kafka=True,
    )
    async with app.router.lifespan_context(app):
        app.state.runtime.service.clock = lambda: TODAY
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relief") as client:
            yield app, client


async def committed_past(kafka: str, group: str, topic: str, partition: int, offset: int) -> bool:
    """Has the consumer group committed past `offset` on the partition (i.e. handled that record)?"""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        return (await consumer.committed(TopicPartition(topic, partition)) or 0) > offset
    finally:
        await consumer.stop()


def token(
    app: Any, sub: str, role: str = "relief_officer", district: str | None = "500103", name: str | None = None
) -> dict[str, str]:
    """Bearer headers; `name` is the display name the front door's tokens carry."""
    signed = issue_token(app.state.settings, sub=sub, role=role, district=district, name=name)
    return {"Authorization": f"Bearer {signed}"}


async def grant_events(kafka: str, case: str, expect: int, topic: str = GRANT_EVENTS_TOPIC) -> list[dict]:
    async def probe():
        records = await read_topic(kafka, topic, expect=10**9, timeout_s=1.5)
        # Publishing is at least once; consumers dedupe on event_id, and so does this reader.
        found = list(
            {e["event_id"]: e for e in (json.loads(r.value) for r in records if r.key == case.encode())}.values()
        )
        return found if len(found) >= expect else None

    return await eventually(probe, timeout=30, what=f"{expect} events of {case} on {topic}")
