"""A missed care visit alerts the responsible worker and their department (P2.2, P5.3), end to end on the
real Kafka and store: relief's care register sweeps, publishes `VisitMissed` through its write path's
outbox, and notify's batch consumer records one alert per recipient, once, however often it is told."""

from __future__ import annotations

import uuid
from datetime import date, timedelta

import pytest

from common.app import create_service_app
from common.kafka import make_broker, publish_event
from common.principal import Principal, Role
from common.settings import ServiceSettings
from contracts.events import all_topics
from contracts.events.care import CARE_EVENTS_TOPIC, care_event
from services.notify import handlers as notify_handlers
from services.notify.app import startup as notify_startup
from services.notify.settings import Settings as NotifySettings
from services.relief import care_api
from services.relief.app import startup as relief_startup
from services.relief.records import RegistryRecord
from tests.relief.conftest import TODAY, relief_settings
from tests.support.kafka import create_topics, unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def test_p2_2_p5_3_a_missed_visit_alerts_the_worker_and_department_once(
    kafka_bootstrap: str, mongodb_url: str, mongo_client
) -> None:
    namespace = f"it-care-{uuid.uuid4().hex[:8]}."
    await create_topics(kafka_bootstrap, *(namespace + t for t in all_topics() if "dept." not in t), partitions=2)
    relief_db, notify_db = f"test_{uuid.uuid4().hex[:12]}", f"test_{uuid.uuid4().hex[:12]}"
    relief = create_service_app(
        relief_settings(kafka_bootstrap, mongodb_url, relief_db, topic_namespace=namespace),
        title="relief-care-it",
        routers=[care_api.router],
        startup=relief_startup,
        wait_for_kafka=True,
    )
    notify = create_service_app(
        NotifySettings(
            kafka_bootstrap_servers=kafka_bootstrap,
            mongodb_url=mongodb_url,
            mongodb_database=notify_db,
            kafka_group_id=unique_name("notify-care-it"),
            topic_namespace=namespace,
            environment="test",
        ),
        title="notify-care-it",
        startup=notify_startup,
        background=[notify_handlers.case_events_consumer],
        wait_for_kafka=True,
    )
    try:
        async with relief.router.lifespan_context(relief), notify.router.lifespan_context(notify):
            service = relief.state.runtime.service
            service.clock = lambda: TODAY
            await service.store.upsert_registry(
                [
                    RegistryRecord.model_validate(
                        {
                            "_id": "R-CARE-1",
                            "name": "李四",
                            "district": "500103",
                            "area": "urban",
                            "categories": ["dibao"],
                            "approved_on": "2020-05-01",
                        }  # fmt: skip
                    )
                ]
            )
            officer = Principal(sub="officer-a", role=Role.RELIEF_OFFICER, district="500103")
            entry = await service.care.enrol(
                officer, recipient_id="R-CARE-1", case_id=None, groups=["disabled"], worker="worker-a",
                worker_name="王社工",
            )  # fmt: skip
            due_on: date = entry.next_due_on
            service.clock = lambda: due_on + timedelta(days=1)
            assert await service.care.sweep() == 1
            store = notify.state.runtime.service.store
            keys = [
                f"care|{entry.id}|{due_on}|visit_missed|{r}"
                for r in ("worker:worker-a", "department:civil_affairs:500103")
            ]

            async def both():
                found = [await store.notification(k) for k in keys]
                return found if all(found) else None

            worker, department = await eventually(both, timeout=40, what="the missed-visit alerts in notify")
            assert worker.kind == "care_visit_missed" and worker.case_id == entry.id
            assert "应于" in worker.text_zh and due_on.isoformat() in worker.text_zh and "P2.2" in worker.text_zh
            assert department.recipient == "department:civil_affairs:500103" and "民政" in department.text_zh

            # The same missed visit again (a redelivery, a second relief process sweeping): no second alert.
            broker = make_broker(ServiceSettings(service_name="care-it", kafka_bootstrap_servers=kafka_bootstrap))
            await broker.start()
            try:
                again = care_event.validate_python(
                    {
                        "type": "care.visit_missed",
                        "case_id": entry.id,
                        "entry_id": entry.id,
                        "district": "500103",
                        "worker": "worker-a",
                        "groups": ["disabled"],
                        "due_on": due_on.isoformat(),
                        "rule_id": entry.rule_id,
                        "provisions": list(entry.provisions),
                    }  # fmt: skip
                )
                await publish_event(broker, again, topic=namespace + CARE_EVENTS_TOPIC)
            finally:
                await broker.stop()

            group = notify.state.runtime.settings.consumer_group

            async def taken_again() -> bool:
                return await _committed(kafka_bootstrap, group, namespace + CARE_EVENTS_TOPIC) >= 2

            await eventually(taken_again, timeout=30, what="notify took the repeated event")
            assert [n.recipient for n in await store.list_notifications(case_id=entry.id)].count("worker:worker-a") == 1
            assert len(await store.list_notifications(case_id=entry.id)) == 2
    finally:
        await mongo_client.drop_database(relief_db)
        await mongo_client.drop_database(notify_db)


async def _committed(kafka: str, group: str, topic: str) -> int:
    """How many records of `topic` the group has committed past, over its partitions."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
        return sum(meta.offset for tp, meta in offsets.items() if tp.topic == topic and meta.offset > 0)
    finally:
        await admin.close()
