"""Producers recover by themselves when their idempotent session breaks (a broker restart), against the
real broker: the broker answers OutOfOrderSequenceNumber, the producer is renewed before the error reaches
the caller, and the caller's next send goes through.

The broken session is made here the way a restart makes it: the producer's sequence numbers run ahead of
what the broker holds for its producer id (a batch that got sequence numbers and then expired while the
broker was away leaves exactly this gap).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import OutOfOrderSequenceNumber

from common.kafka import BatchProducer, event_record, make_broker, publish_event
from common.kafka_recovery import current_producer
from common.settings import ServiceSettings
from contracts.events.router import CaseSignedFor
from tests.support.kafka import create_topics, read_topic, unique_name

pytestmark = pytest.mark.integration


def signed_for(n: int) -> CaseSignedFor:
    return CaseSignedFor(
        occurred_at=datetime.now(UTC),
        case_id=f"CQ-20261202-{n:06d}",
        task_id=f"CQ-20261202-{n:06d}-T1",
        department="civil_affairs",
        district="500103",
        actor="w-1",
    )


def break_session(producer: AIOKafkaProducer, topic: str) -> None:
    """Put the producer's next sequence number ahead of the broker's, as a lost batch would."""
    producer._txn_manager.increment_sequence_number(TopicPartition(topic, 0), 7)


async def test_a_broker_producer_whose_session_broke_is_renewed_and_publishes_again(kafka_bootstrap: str) -> None:
    topic = unique_name("it-renew")
    await create_topics(kafka_bootstrap, topic)
    broker = make_broker(ServiceSettings(service_name=unique_name("it"), kafka_bootstrap_servers=kafka_bootstrap))
    async with broker:
        await broker.start()
        await publish_event(broker, signed_for(1), topic=topic)
        broken = current_producer(broker)
        assert broken is not None
        break_session(broken, topic)

        with pytest.raises(OutOfOrderSequenceNumber):  # the real broker refuses the gap
            await publish_event(broker, signed_for(2), topic=topic)
        assert current_producer(broker) is not broken  # renewed before the error reached the caller
        assert broken._closed

        await publish_event(broker, signed_for(2), topic=topic)  # the caller's retry goes through
        await publish_event(broker, signed_for(3), topic=topic)

    records = await read_topic(kafka_bootstrap, topic, expect=3)
    assert [json.loads(r.value)["case_id"] for r in records] == [f"CQ-20261202-{n:06d}" for n in (1, 2, 3)]


async def test_the_batch_producer_is_renewed_after_its_session_broke(kafka_bootstrap: str) -> None:
    topic = unique_name("it-renew-batch")
    await create_topics(kafka_bootstrap, topic)
    producer = BatchProducer(kafka_bootstrap, client_id=unique_name("it"))
    await producer.start()
    try:

        def records(*ns: int) -> list:
            return [(topic, *event_record(signed_for(n).model_dump(mode="json"))) for n in ns]

        await producer.deliver(records(1), timeout=10)
        broken = producer.producer
        break_session(broken, topic)
        with pytest.raises(OutOfOrderSequenceNumber):
            await producer.deliver(records(2, 3), timeout=10)
        assert producer.producer is not broken and broken._closed
        await producer.deliver(records(2, 3), timeout=10)  # a redelivered batch goes through the new session
    finally:
        await producer.stop()
    records_read = await read_topic(kafka_bootstrap, topic, expect=3)
    assert [json.loads(r.value)["case_id"] for r in records_read] == [f"CQ-20261202-{n:06d}" for n in (1, 2, 3)]
