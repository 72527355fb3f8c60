"""Relief's Kafka handlers with FastStream's TestKafkaBroker and the real store: events in any order,
registry matching, refusals by rule, tolerance of other lifecycle events, data gaps to the DLQ."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from faststream.kafka import TestKafkaBroker

from common.app import Runtime
from common.kafka import make_broker
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.relief import GRANT_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CasesMerged
from services.relief.app import load_standards_book
from services.relief.domain.registry import hash_id_card
from services.relief.handlers import build_subscribers
from services.relief.service import Relief
from services.relief.store import ReliefStore
from tests.relief.conftest import case_id, dispatched, help_requested, id_card, relief_settings

pytestmark = pytest.mark.component


@pytest.fixture
async def wired(mongo_client, db, db_name, mongodb_url):
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name, consumer_max_attempts=1)
    broker = make_broker(settings)
    store = ReliefStore(db)
    await store.ensure_indexes()
    relief = Relief(store=store, book=load_standards_book(settings), broker=broker, id_hash_salt="salt")
    runtime = Runtime(settings=settings, broker=broker, mongo=mongo_client, db=db, store=relief)
    broker.include_router(build_subscribers(runtime))
    published: dict[str, list[dict]] = {"grants": [], "dlq": []}

    @broker.subscriber(GRANT_EVENTS_TOPIC)
    async def grants(body: dict) -> None:
        published["grants"].append(body)

    @broker.subscriber(f"{CASE_LIFECYCLE_TOPIC}.dlq")
    async def dead(body: dict) -> None:
        published["dlq"].append(body)

    async with TestKafkaBroker(broker) as test_broker:
        yield test_broker, db, published


async def test_dispatch_first_then_help_request_proposes_once_and_refusals_cite_the_rule(wired):
    """Order does not matter; a registry dibao recipient asking P5.2b is refused by the rule (P5.2b),
    with reasons, while P5.2a is proposed from the registry's facts (P5.2a, P2.3)."""
    broker, db, published = wired
    await db["registry"].insert_one({"_id": "R-42", "id_card_hash": hash_id_card(id_card(42), "salt"),
                                     "district": "500103", "area": "rural", "categories": ["dibao"],
                                     "approved_on": "2020-01-01", "ended_on": None})
    case = case_id()
    needs = ("temp_assist_unemployed", "temp_assist_epidemic")
    await broker.publish(dispatched(case, needs).model_dump(mode="json"), topic=CASE_LIFECYCLE_TOPIC)
    assert await db["entitlements"].count_documents({"case_id": case}) == 0  # waits for the facts
    help_ = help_requested(case, needs, id_card=id_card(42), months_without_income=4)
    for _ in range(2):
        await broker.publish(help_.model_dump(mode="json"), topic=HELP_REQUESTED_TOPIC)

    docs = {d["rule_id"]: d for d in await db["entitlements"].find({"case_id": case}).to_list(10)}
    assert docs["P5.2b"]["status"] == "rejected" and "already receives dibao" in docs["P5.2b"]["reasons"][0]
    assert docs["P5.2b"]["decisions"][0]["by"] == "rule:P5.2b"
    assert docs["P5.2a"]["status"] == "proposed" and docs["P5.2a"]["amount"] == "992.00"  # 2 x rural 496 (EXAMPLE)
    assert docs["P5.2a"]["recipient_id"] == "R-42" and docs["P5.2a"]["facts"]["registry"]["categories"] == ["dibao"]
    assert id_card(42) not in str(docs)  # the ID-card number is never stored in clear
    types = sorted((e["rule_id"], e["type"]) for e in published["grants"] if e["case_id"] == case)
    assert types == [("P5.2a", "grant.proposed"), ("P5.2b", "grant.rejected")]
    assert all(not d.get("outbox") for d in docs.values())  # published, outbox emptied


async def test_other_lifecycle_events_pass_by(wired):
    broker, db, published = wired
    case = case_id()
    await broker.publish({"type": "case.some_future_event", "case_id": case}, topic=CASE_LIFECYCLE_TOPIC)
    await broker.publish({"type": "case.resolved", "case_id": case, "actor": "w", "outcome": "done",
                          "occurred_at": datetime.now(UTC).isoformat()}, topic=CASE_LIFECYCLE_TOPIC)
    assert published["dlq"] == [] and await db["cases"].count_documents({}) == 0


async def test_a_case_before_any_standard_goes_to_the_dlq_not_lost(wired):
    """No dibao standard in force on the day reported is a data gap: the message is dead-lettered."""
    broker, db, published = wired
    case = case_id()
    old = help_requested(case, ("temp_assist_epidemic",), household_status="dibao").model_copy(
        update={"received_at": datetime(2020, 6, 1, tzinfo=UTC)})
    await broker.publish(old.model_dump(mode="json"), topic=HELP_REQUESTED_TOPIC)
    await broker.publish(dispatched(case, ("temp_assist_epidemic",)).model_dump(mode="json"), topic=CASE_LIFECYCLE_TOPIC)
    assert len(published["dlq"]) == 1 and published["dlq"][0]["case_id"] == case
    assert await db["entitlements"].count_documents({"case_id": case}) == 0


class FlakyBroker:
    """Stands in for the broker: refuses to publish while `down`, records what it published."""

    def __init__(self) -> None:
        self.down = True
        self.published: list[dict] = []

    async def publish(self, message, **kwargs) -> None:
        if self.down:
            raise ConnectionError("kafka unreachable")
        self.published.append(message.model_dump(mode="json"))


async def test_events_written_while_kafka_is_down_are_relayed_once_it_is_back(db, mongodb_url, db_name):
    """A decision is never lost with its event: the event waits in the entitlement's outbox."""
    store = ReliefStore(db)
    await store.ensure_indexes()
    broker = FlakyBroker()
    settings = relief_settings("127.0.0.1:1", mongodb_url, db_name)
    relief = Relief(store=store, book=load_standards_book(settings), broker=broker)  # type: ignore[arg-type]
    case = case_id()
    await relief.on_help_requested(help_requested(case, ("temp_assist_major",)))
    await relief.on_dispatched(dispatched(case, ("temp_assist_major",)))
    assert len(await store.outbox_of(f"{case}:P5.2c")) == 1 and broker.published == []
    assert await relief.relay_outbox(min_age_s=0) == 0  # still down
    broker.down = False
    assert await relief.relay_outbox(min_age_s=60) == 0  # too fresh: left to the request that wrote it
    assert await relief.relay_outbox(min_age_s=0) == 1
    assert await relief.relay_outbox(min_age_s=0) == 0
    assert [e["type"] for e in broker.published] == ["grant.proposed"] and broker.published[0]["case_id"] == case
    assert await store.outbox_of(f"{case}:P5.2c") == []


async def test_a_case_merged_into_another_has_its_open_proposals_cancelled(wired):
    """One hardship, two calls: when the router merges the duplicate, its open proposal is cancelled
    (GrantCancelled, reason cites the surviving case) so it cannot be approved and paid a second time."""
    broker, db, published = wired
    child, parent = case_id(), case_id()
    for case in (child, parent):
        await broker.publish(help_requested(case, ("temp_assist_major",)).model_dump(mode="json"),
                             topic=HELP_REQUESTED_TOPIC)
        await broker.publish(dispatched(case, ("temp_assist_major",)).model_dump(mode="json"), topic=CASE_LIFECYCLE_TOPIC)
    merged = CasesMerged(case_id=child, into_case_id=parent, actor="router")
    for _ in range(2):  # redelivered: nothing more happens
        await broker.publish(merged.model_dump(mode="json"), topic=CASE_LIFECYCLE_TOPIC)
    doc = await db["entitlements"].find_one({"_id": f"{child}:P5.2c"})
    assert doc["status"] == "cancelled" and doc["decisions"][-1]["by"] == "relief:case-merged"
    assert (await db["entitlements"].find_one({"_id": f"{parent}:P5.2c"}))["status"] == "proposed"
    cancelled = [e for e in published["grants"] if e["type"] == "grant.cancelled"]
    assert len(cancelled) == 1 and cancelled[0]["case_id"] == child and parent in cancelled[0]["reason"]
