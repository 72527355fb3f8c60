"""Relief's batch intake with FastStream's TestKafkaBroker and the real store: events in any order,
registry matching, refusals by rule, tolerance of other lifecycle events, data gaps to the DLQ."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import cast

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker

from common.batches import handle_with_policy
from common.consumer import DeliveryPolicy
from common.kafka import make_broker
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.relief import GRANT_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CasesMerged
from services.relief.app import load_standards_book
from services.relief.domain.registry import hash_id_card
from services.relief.handlers import contract_topics, take_records
from services.relief.service import Relief
from services.relief.store import ReliefStore
from tests.relief.conftest import case_id, help_requested, id_card, relief_settings
from tests.support.events import dispatched

pytestmark = pytest.mark.component


def records_of(*bodies: tuple[str, object]) -> list[SimpleNamespace]:
    """Kafka records as the batch consumer receives them: (topic, event or JSON-able dict)."""
    import json

    return [
        SimpleNamespace(
            topic=topic,
            partition=0,
            offset=n,
            key=None,
            headers=[],
            value=body.model_dump_json().encode() if hasattr(body, "model_dump_json") else json.dumps(body).encode(),
        )
        for n, (topic, body) in enumerate(bodies)
    ]


class Wired(SimpleNamespace):
    async def deliver(self, *bodies: tuple[str, object]) -> None:
        """One batch, under the delivery rules of `common.batches` (rejected records go to the DLQ)."""
        await handle_with_policy(
            self.policy,
            lambda batch: take_records(self.relief, batch, topics=self.topics),
            records_of(*bodies),
        )


@pytest.fixture
async def wired(mongo_client, db, db_name, mongodb_url):
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name, consumer_max_attempts=1)
    broker = make_broker(settings)
    store = ReliefStore(db)
    await store.ensure_indexes()
    relief = Relief(store=store, book=load_standards_book(settings), broker=broker, id_hash_salt="salt")
    policy = DeliveryPolicy("relief", max_attempts=1, backoff_initial_s=0.01, backoff_max_s=0.01)
    published: dict[str, list[dict]] = {"grants": [], "dlq": [], "help_dlq": []}

    @broker.subscriber(GRANT_EVENTS_TOPIC)
    async def grants(body: dict) -> None:
        published["grants"].append(body)

    @broker.subscriber(f"{CASE_LIFECYCLE_TOPIC}.dlq")
    async def dead(body: dict) -> None:
        published["dlq"].append(body)

    @broker.subscriber(f"{HELP_REQUESTED_TOPIC}.dlq")
    async def dead_help(body: dict) -> None:
        published["help_dlq"].append(body)

    async with TestKafkaBroker(broker):
        policy.bind(broker)
        yield Wired(relief=relief, policy=policy, topics=contract_topics(settings)), db, published


async def test_dispatch_first_then_help_request_proposes_once_and_refusals_cite_the_rule(wired):
    """Order does not matter; a registry dibao recipient asking P5.2b is refused by the rule (P5.2b),
    with reasons, while P5.2a is proposed from the registry's facts (P5.2a, P2.3)."""
    broker, db, published = wired
    await db["registry"].insert_one(
        {
            "_id": "R-42",
            "id_card_hash": hash_id_card(id_card(42), "salt"),
            "district": "500103",
            "area": "rural",
            "categories": ["dibao"],
            "approved_on": "2020-01-01",
            "ended_on": None,
        }
    )
    case = case_id()
    needs = ("temp_assist_unemployed", "temp_assist_epidemic")
    await broker.deliver((CASE_LIFECYCLE_TOPIC, dispatched(case, needs=needs)))
    assert await db["entitlements"].count_documents({"case_id": case}) == 0  # waits for the facts
    help_ = help_requested(case, *needs, id_card=id_card(42), months_without_income=4)
    await broker.deliver((HELP_REQUESTED_TOPIC, help_), (HELP_REQUESTED_TOPIC, help_))  # redelivered in the batch
    await broker.deliver((HELP_REQUESTED_TOPIC, help_))  # and in a later one

    docs = {d["rule_id"]: d for d in await db["entitlements"].find({"case_id": case}).to_list(10)}
    assert docs["P5.2b"]["status"] == "rejected" and "already receives dibao" in docs["P5.2b"]["reasons"][0]
    assert docs["P5.2b"]["decisions"][0]["by"] == "rule:P5.2b"
    assert docs["P5.2a"]["status"] == "proposed" and docs["P5.2a"]["amount"] == "992.00"  # 2 x rural 496 (EXAMPLE)
    assert docs["P5.2a"]["recipient_id"] == "R-42" and docs["P5.2a"]["facts"]["registry"]["categories"] == ["dibao"]
    assert id_card(42) not in str(docs)  # the ID-card number is never stored in clear
    types = sorted((e["rule_id"], e["type"]) for e in published["grants"] if e["case_id"] == case)
    assert types == [("P5.2a", "grant.proposed"), ("P5.2b", "grant.rejected")]
    await broker.relief.entitlements.settle()  # the records of what was published follow the batch
    published_marks = db["entitlements_published_claims"]
    for d in docs.values():  # each outbox recorded as published
        assert await published_marks.count_documents({"_id": f"{d['_id']}@{d['version']}"}) == 1


async def test_lifecycle_events_relief_does_not_use_pass_by_and_unknown_types_are_dead_lettered(wired):
    broker, db, published = wired
    case = case_id()
    await broker.deliver((CASE_LIFECYCLE_TOPIC, {"type": "case.some_future_event", "case_id": case}))
    await broker.deliver(
        (
            CASE_LIFECYCLE_TOPIC,
            {
                "type": "case.resolved",
                "case_id": case,
                "actor": "w",
                "outcome": "done",
                "occurred_at": datetime.now(UTC).isoformat(),
            },
        ),
        (CASE_LIFECYCLE_TOPIC, {"type": "case.some_future_event", "case_id": case}),
    )
    assert [m["type"] for m in published["dlq"]] == ["case.some_future_event"] * 2  # replayable after an upgrade
    assert await db["cases"].count_documents({}) == 0


async def test_records_that_fail_validation_go_to_the_dlq_and_the_rest_of_the_batch_goes_on(wired):
    broker, db, published = wired
    case = case_id()
    needs = ("temp_assist_major",)
    await broker.deliver(
        (HELP_REQUESTED_TOPIC, {"case_id": case, "not": "a help request"}),
        (HELP_REQUESTED_TOPIC, help_requested(case, *needs)),
        (CASE_LIFECYCLE_TOPIC, {"type": "case.dispatched", "case_id": case}),  # no district
        (CASE_LIFECYCLE_TOPIC, dispatched(case, needs=needs)),
    )
    assert len(published["help_dlq"]) == 1 and len(published["dlq"]) == 1
    assert (await db["entitlements"].find_one({"_id": f"{case}:P5.2c"}))["status"] == "proposed"


async def test_a_case_before_any_standard_goes_to_the_dlq_not_lost(wired):
    """No dibao standard in force on the day reported is a data gap: the message is dead-lettered."""
    broker, db, published = wired
    case = case_id()
    old = help_requested(case, "temp_assist_epidemic", household_status="dibao").model_copy(
        update={"received_at": datetime(2020, 6, 1, tzinfo=UTC)}
    )
    await broker.deliver((HELP_REQUESTED_TOPIC, old))
    await broker.deliver((CASE_LIFECYCLE_TOPIC, dispatched(case, needs=("temp_assist_epidemic",))))
    assert len(published["dlq"]) == 1 and published["dlq"][0]["case_id"] == case
    assert await db["entitlements"].count_documents({"case_id": case}) == 0


async def test_a_data_gap_rejects_only_that_cases_records_not_the_batch(wired):
    """In one batch: a case with no standard in force (both its records dead-lettered) and a good case
    (proposed)."""
    broker, db, published = wired
    gap, good = case_id(), case_id()
    old = help_requested(gap, "temp_assist_epidemic", household_status="dibao").model_copy(
        update={"received_at": datetime(2020, 6, 1, tzinfo=UTC)}
    )
    await broker.deliver(
        (HELP_REQUESTED_TOPIC, old),
        (HELP_REQUESTED_TOPIC, help_requested(good, "temp_assist_major")),
        (CASE_LIFECYCLE_TOPIC, dispatched(gap, needs=("temp_assist_epidemic",))),
        (CASE_LIFECYCLE_TOPIC, dispatched(good, needs=("temp_assist_major",))),
    )
    assert [d["case_id"] for d in published["dlq"]] == [gap] and [d["case_id"] for d in published["help_dlq"]] == [gap]
    assert await db["entitlements"].count_documents({"case_id": gap}) == 0
    assert (await db["entitlements"].find_one({"_id": f"{good}:P5.2c"}))["status"] == "proposed"


class FlakyBroker:
    """Stands in for the broker: refuses to publish while `down`, records what it published."""

    def __init__(self) -> None:
        self.down = True
        self.published: list[dict] = []

    async def publish(self, message, **kwargs) -> None:
        if self.down:
            raise ConnectionError("kafka unreachable")
        self.published.append(message.model_dump(mode="json"))


async def test_events_written_while_kafka_is_down_are_swept_once_it_is_back(db, mongodb_url, db_name):
    """A decision is never lost with its event: the event waits in the entitlement's outbox, and the
    outbox sweeper (`common.aggregates.Aggregates.sweep`) publishes it once Kafka is back."""
    store = ReliefStore(db)
    await store.ensure_indexes()
    broker = FlakyBroker()
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    relief = Relief(store=store, book=load_standards_book(settings), broker=cast(KafkaBroker, broker))
    case = case_id()
    await relief.on_help_requested(help_requested(case, "temp_assist_major"))
    await relief.on_dispatched(dispatched(case, needs=("temp_assist_major",)))
    doc = await db["entitlements"].find_one({"_id": f"{case}:P5.2c"})
    assert len(doc["outbox"]) == 1 and doc["outbox_pending"] and broker.published == []
    await relief.entitlements.sweep(datetime.now(UTC))
    assert broker.published == []  # still down
    broker.down = False
    fresh = Relief(store=store, book=relief.book, broker=cast(KafkaBroker, broker))  # a restarted process
    assert await fresh.entitlements.sweep(datetime.now(UTC) - timedelta(seconds=60)) == 0  # too fresh: left alone
    assert await fresh.entitlements.sweep(datetime.now(UTC)) == 1
    assert await fresh.entitlements.sweep(datetime.now(UTC)) == 0
    assert [e["type"] for e in broker.published] == ["grant.proposed"] and broker.published[0]["case_id"] == case
    grant = await store.get_entitlement(f"{case}:P5.2c")
    assert grant is not None
    assert await db["entitlements_published_claims"].count_documents({"_id": f"{grant.id}@{grant.version}"}) == 1


async def test_a_case_merged_into_another_has_its_open_proposals_cancelled(wired):
    """One hardship, two calls: when the router merges the duplicate, its open proposal is cancelled
    (GrantCancelled, reason cites the surviving case) so it cannot be approved and paid a second time."""
    broker, db, published = wired
    child, parent = case_id(), case_id()
    for case in (child, parent):
        await broker.deliver((HELP_REQUESTED_TOPIC, help_requested(case, "temp_assist_major")))
        await broker.deliver((CASE_LIFECYCLE_TOPIC, dispatched(case, needs=("temp_assist_major",))))
    merged = CasesMerged(case_id=child, into_case_id=parent, actor="router")
    await broker.deliver((CASE_LIFECYCLE_TOPIC, merged), (CASE_LIFECYCLE_TOPIC, merged))  # redelivered: nothing more
    await broker.deliver((CASE_LIFECYCLE_TOPIC, merged))
    doc = await db["entitlements"].find_one({"_id": f"{child}:P5.2c"})
    assert doc["status"] == "cancelled" and doc["decisions"][-1]["by"] == "relief:case-merged"
    assert (await db["entitlements"].find_one({"_id": f"{parent}:P5.2c"}))["status"] == "proposed"
    cancelled = [e for e in published["grants"] if e["type"] == "grant.cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["case_id"] == child and parent in cancelled[0]["reason"]


async def test_an_outbox_whose_sweep_failed_while_kafka_was_down_is_swept_once_it_is_back(db, mongodb_url, db_name):
    """One process, Kafka down for longer than the grace period: the sweeps during the outage fail to
    publish; a sweep after Kafka is back must still publish the entitlement's event."""
    store = ReliefStore(db)
    await store.ensure_indexes()
    broker = FlakyBroker()
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    relief = Relief(store=store, book=load_standards_book(settings), broker=cast(KafkaBroker, broker))
    case = case_id()
    await relief.on_help_requested(help_requested(case, "temp_assist_major"))
    await relief.on_dispatched(dispatched(case, needs=("temp_assist_major",)))
    later = datetime.now(UTC) + timedelta(seconds=30)  # the grace period has passed
    await relief.entitlements.sweep(later)  # Kafka still down: the publish fails
    broker.down = False
    await relief.entitlements.sweep(later + timedelta(seconds=5))  # the next sweep, Kafka back
    assert [e["type"] for e in broker.published] == ["grant.proposed"]
