"""The router's intake works a batch as a pipeline of chunks (store one while routing the next and
publishing the previous); against the real store and broker it still dispatches each case once, refuses
a reused case id, keeps each case's events in order and republishes the same events on redelivery."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from pymongo.errors import AutoReconnect

from common.kafka import BatchProducer
from contracts.codes import departments
from services.router.app import catalogue_of
from services.router.cases import CaseService
from services.router.domain.case import Case
from services.router.settings import Settings
from services.router.store import RouterStore
from tests.support.events import help_requested
from tests.support.kafka import create_topics, read_topic, unique_name

pytestmark = pytest.mark.integration


def make_settings(bootstrap: str, chunk: int) -> Settings:
    return Settings(
        kafka_bootstrap_servers=bootstrap,
        topic_namespace=unique_name("pipe") + ".",
        intake_chunk_size=chunk,
        environment="test",
    )


async def test_a_batch_worked_in_chunks_dispatches_each_case_once_and_in_order(kafka_bootstrap: str, db) -> None:
    settings = make_settings(kafka_bootstrap, chunk=2)
    topics = [settings.lifecycle_topic, *(settings.department_topic(d) for d in departments())]
    await create_topics(kafka_bootstrap, *topics, partitions=3)
    store = RouterStore(db)
    await store.ensure_indexes()
    service = CaseService(
        store=store,
        broker=None,  # type: ignore[arg-type]  # the intake publishes by `producer`
        settings=settings,
        catalogue=catalogue_of(settings),
    )
    case_ids = [f"CQ-20260215-{n:06d}" for n in range(1, 8)]
    requests = [help_requested(case_id, "housing_aid", "education_aid") for case_id in case_ids]
    reused = help_requested(case_ids[3], "other")  # a different request with a case id already in the batch
    batch = [*requests[:3], requests[0], *requests[3:5], reused, *requests[5:]]  # and one request twice
    producer = BatchProducer(kafka_bootstrap, client_id=unique_name("pipe"))
    await producer.start()
    try:
        first = await service.dispatch_requests(batch, producer=producer)
        again = await service.dispatch_requests(batch, producer=producer)  # the whole batch redelivered
    finally:
        await producer.stop()

    assert first.created == 7 and again.created == 0
    assert set(first.conflicts) == set(again.conflicts) == {str(reused.event_id)}
    assert await db["cases"].count_documents({}) == 7
    lifecycle = await read_topic(kafka_bootstrap, settings.lifecycle_topic, expect=14)
    dispatched = defaultdict(list)
    for record in lifecycle:
        body = json.loads(record.value)
        assert body["type"] == "case.dispatched" and record.key == body["case_id"].encode()
        dispatched[body["case_id"]].append(body["event_id"])
    assert sorted(dispatched) == case_ids
    for case_id, ids in dispatched.items():
        assert len(ids) == 2 and ids[0] == ids[1], f"{case_id}: the redelivery republished other events"
    housing = await read_topic(kafka_bootstrap, settings.department_topic("housing"), expect=14)
    assert sorted({json.loads(r.value)["case_id"] for r in housing}) == case_ids
    assert all(json.loads(r.value)["role"] == "lead" for r in housing)


async def test_a_failing_chunk_fails_the_batch_with_its_own_error(kafka_bootstrap: str, db) -> None:
    """The intake tells a store outage (redeliver) from a poison request (dead-letter) by the exception's
    type, so a chunk's failure must surface as itself, not wrapped in an exception group."""
    settings = make_settings(kafka_bootstrap, chunk=1)

    class FlakyStore(RouterStore):
        calls = 0

        async def insert_cases(
            self,
            cases: list[tuple[Case, list[dict[str, Any]]]],
            remember: Callable[[dict[str, Any]], None] | None = None,
        ) -> dict[str, bool]:
            FlakyStore.calls += 1
            if FlakyStore.calls == 2:
                raise AutoReconnect("store went away")
            return await super().insert_cases(cases, remember)

    service = CaseService(
        store=FlakyStore(db),
        broker=None,  # type: ignore[arg-type]  # the intake publishes by `producer`
        settings=settings,
        catalogue=catalogue_of(settings),
    )
    producer = BatchProducer(kafka_bootstrap, client_id=unique_name("pipe"))
    await create_topics(kafka_bootstrap, settings.lifecycle_topic, settings.department_topic("civil_affairs"))
    await producer.start()
    try:
        with pytest.raises(AutoReconnect):
            await service.dispatch_requests(
                [help_requested(f"CQ-20260215-{uuid.uuid4().int % 10**6:06d}", "other") for _ in range(3)],
                producer=producer,
            )
    finally:
        await producer.stop()
