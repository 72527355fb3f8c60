"""The router app in-process against the real Kafka and store, on its own topics and database."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from common.app import Runtime
from common.auth import issue_token
from common.kafka import publish_event
from contracts.events import CASE_EVENTS_TOPIC, CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC, department_queue_topic
from contracts.events.base import Event
from contracts.events.hotline import HelpRequested
from services.router.app import create_app
from services.router.cases import CaseService
from services.router.domain.case import Case
from services.router.settings import Settings
from tests.support.kafka import create_topics, unique_name

DESK = (
    "civil_affairs",
    "market_regulation",
    "commerce",
    "hrss",
    "education",
    "health",
    "housing",
    "emergency_management",
)


@dataclass
class RouterHarness:
    app: FastAPI
    settings: Settings
    client: httpx.AsyncClient
    bootstrap: str

    @property
    def runtime(self) -> Runtime[CaseService]:
        runtime: Runtime[CaseService] = self.app.state.runtime
        return runtime

    @property
    def service(self) -> CaseService:
        return self.runtime.service

    def token(
        self, role: str, department: str | None = None, district: str | None = "500103", sub: str | None = None
    ) -> dict[str, str]:
        token = issue_token(
            self.settings, sub=sub or f"{role}-{department}", role=role, department=department, district=district
        )
        return {"Authorization": f"Bearer {token}"}

    def worker(self, department: str, district: str = "500103") -> dict[str, str]:
        return self.token("dept_worker", department, district)

    @property
    def broker(self) -> KafkaBroker:
        broker = self.runtime.broker
        assert broker is not None, "the router runs with Kafka"
        return broker

    async def stored_case(self, case_id: str) -> Case:
        case = await self.service.store.get(case_id)
        assert case is not None, f"case {case_id} is not stored"
        return case

    async def publish(self, event: Event, topic: str) -> None:
        await publish_event(self.broker, event, topic=self.settings.topic(topic))

    async def send_help(self, request: HelpRequested) -> None:
        await self.publish(request, HELP_REQUESTED_TOPIC)

    async def queue(self, department: str, **params: Any) -> list[dict[str, Any]]:
        response = await self.client.get("/api/v1/queue", headers=self.worker(department), params=params)
        assert response.status_code == 200, response.text
        return response.json()

    async def task_in_queue(self, department: str, case_id: str, role: str = "lead") -> dict[str, Any] | None:
        return next((r for r in await self.queue(department) if r["case_id"] == case_id and r["role"] == role), None)

    async def events(self, case_id: str, topic: str = CASE_LIFECYCLE_TOPIC) -> list[dict[str, Any]]:
        """Every record of `case_id` on (the namespaced) `topic`, read from the beginning."""
        consumer = AIOKafkaConsumer(
            self.settings.topic(topic),
            bootstrap_servers=self.bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: list[dict[str, Any]] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=300)
                if not batch:
                    break
                for records in batch.values():
                    for record in records:
                        if record.key == case_id.encode():
                            out.append(json.loads(record.value))
        finally:
            await consumer.stop()
        return out


def all_topics(namespace: str) -> list[str]:
    base = [HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, CASE_EVENTS_TOPIC, *(department_queue_topic(d) for d in DESK)]
    names = [namespace + t for t in base]
    return names + [f"{t}.dlq" for t in names]


@contextlib.asynccontextmanager
async def running_router(
    bootstrap: str, mongodb_url: str, database: str, **overrides: Any
) -> AsyncIterator[RouterHarness]:
    namespace = unique_name("rt") + "."
    await create_topics(bootstrap, *all_topics(namespace), partitions=3)
    settings = Settings(
        kafka_bootstrap_servers=bootstrap,
        mongodb_url=mongodb_url,
        mongodb_database=database,
        kafka_group_id=unique_name("router"),
        topic_namespace=namespace,
        desk_departments=DESK,
        environment="test",
        consumer_max_attempts=2,
        consumer_backoff_initial_s=0.01,
        consumer_backoff_max_s=0.02,
        outbox_sweep_interval_s=0.5,
        outbox_grace_s=1.0,
        **overrides,
    )
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            await app.state.runtime.kafka_connected.wait()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
                yield RouterHarness(app, settings, client, bootstrap)
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics(all_topics(namespace))
        finally:
            await admin.close()
