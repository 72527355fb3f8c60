"""Never pay or propose twice, against the real Kafka and store: a redelivered help request and dispatch
propose once (real consumer group, real commits), and a subsidy run SIGKILLed mid-run resumes paying
every eligible recipient exactly once (P1.3, P2.1, P6.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from common.kafka import event_headers
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.relief import GRANT_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseSignedFor
from services.relief.app import create_app
from services.relief.domain.facts import Category
from services.relief.domain.runs import RunKind, RunSpec
from services.relief.records import RegistryRecord
from services.relief.store import ReliefStore
from services.relief.subsidies import execute_run, run_document
from tests.relief.conftest import case_id, committed_past, help_requested, relief_settings
from tests.support.events import dispatched
from tests.support.kafka import create_topics, read_topic, unique_name
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


async def test_redelivered_help_request_and_dispatch_propose_each_grant_once(kafka_bootstrap, mongodb_url, db_name, db):
    """The same events delivered twice (as after a producer retry or a consumer restart) -> one
    entitlement per (case, rule) and one GrantProposed each; other lifecycle events pass by."""
    ns = f"{unique_name('relief-it')}."  # topics of its own: no other consumer proposes for this case
    await create_topics(
        kafka_bootstrap, *(ns + t for t in (HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC))
    )
    settings = relief_settings(kafka_bootstrap, mongodb_url, db_name, topic_namespace=ns)
    app = create_app(settings)
    case = case_id()
    needs = ("temp_assist_major", "temp_assist_epidemic", "homeless_cold")
    help_ = help_requested(case, *needs, household_status="low_income")
    dispatch = dispatched(case, needs=needs)
    signed = CaseSignedFor(case_id=case, actor="w-1", task_id=f"{case}:civil_affairs")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    last: dict[TopicPartition, int] = {}
    try:
        for event in (help_, dispatch, help_, signed, dispatch):  # each delivered twice
            meta = await producer.send_and_wait(
                ns + event.TOPIC,
                event.model_dump_json().encode(),
                key=event.key,
                headers=[(k, v.encode()) for k, v in event_headers(event).items()],
            )
            last[TopicPartition(meta.topic, meta.partition)] = meta.offset
    finally:
        await producer.stop()

    async with app.router.lifespan_context(app):
        for tp, offset in last.items():  # the group committed past our last record on each topic
            await eventually(
                partial(committed_past, kafka_bootstrap, settings.consumer_group, tp.topic, tp.partition, offset),
                timeout=90,
                what=f"relief to consume and commit {tp}",
            )
        docs = await db["entitlements"].find({"case_id": case}).to_list(10)
        assert sorted(d["_id"] for d in docs) == [f"{case}:P5.2a", f"{case}:P5.2c"]
        assert await db["cases"].count_documents({"_id": case}) == 1

        async def proposed():
            records = await read_topic(kafka_bootstrap, ns + GRANT_EVENTS_TOPIC, expect=10**9, timeout_s=1.5)
            events = {e["event_id"]: e for e in (json.loads(r.value) for r in records) if e["case_id"] == case}
            return sorted(e["rule_id"] for e in events.values()) if len(events) >= 2 else None

        assert await eventually(proposed, timeout=30, what="grant events") == ["P5.2a", "P5.2c"]


def make_registry(n: int) -> list[RegistryRecord]:
    """n recipients in 500103: every 5th is an edge household (not eligible for the holiday subsidy)."""
    docs = []
    for i in range(n):
        cats = ["edge"] if i % 5 == 4 else (["dibao", "orphan"] if i % 7 == 0 else ["tekun"] if i % 2 else ["dibao"])
        docs.append(
            {
                "_id": f"R{i:07d}",
                "name": f"n{i}",
                "id_card_hash": f"h{i}",
                "id_card_masked": "x",
                "district": "500103",
                "area": "urban",
                "categories": cats,
                "approved_on": "2020-06-01",
                "ended_on": None,
            }
        )
    return [RegistryRecord.model_validate(doc) for doc in docs]


async def test_subsidy_run_killed_mid_run_resumes_and_pays_everyone_exactly_once(mongodb_url, db_name, db):
    """P2.1 holiday run over the registry as a subprocess, SIGKILLed mid-run; the resumed run completes
    it; a third run inserts nothing. Ledger count == eligible recipients, each paid once."""
    store = ReliefStore(db)
    await store.ensure_indexes()
    n = 4000
    await store.upsert_registry(make_registry(n))
    eligible = sum(1 for i in range(n) if i % 5 != 4)
    spec = RunSpec(
        "P2.1-2021-02-spring-city",
        RunKind.HOLIDAY,
        "2021-02",
        frozenset({"500103"}),
        {Category.DIBAO: Decimal("200.00"), Category.TEKUN: Decimal("300.00"), Category.ORPHAN: Decimal("500.00")},
    )
    assert await store.create_run(run_document(spec, "spring", "city", "coord-1", datetime.now(UTC)))

    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "RELIEF_MONGODB_URL": mongodb_url,
        "RELIEF_MONGODB_DATABASE": db_name,
        "RELIEF_LOG_JSON": "true",
    }
    cmd = [sys.executable, "-m", "services.relief.subsidies", spec.run_id, "--batch-size", "100", "--pause-s", "0.1"]
    first = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await eventually(lambda: _ledger_at_least(db, 300), timeout=60, what="the run to pay some recipients")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    partial = await db["ledger"].count_documents({"run_id": spec.run_id})
    assert 300 <= partial < eligible, "the run should have been killed mid-run"

    resumed = await execute_run(store, spec.run_id, by="coord-1", batch_size=500)
    assert resumed.inserted == eligible - partial and resumed.ledger_count == eligible
    again = await execute_run(store, spec.run_id, by="coord-1", batch_size=500)
    assert again.inserted == 0 and again.ledger_count == eligible

    assert await db["ledger"].count_documents({"run_id": spec.run_id}) == eligible
    orphan = await db["ledger"].find_one({"recipient_id": "R0000007"})
    assert orphan["amount"] == "500.00" and orphan["category"] == "orphan"  # highest category, paid once
    assert await db["ledger"].count_documents({"recipient_id": "R0000004"}) == 0  # edge household
    run = await store.get_run(spec.run_id)
    assert run is not None
    assert run.status == "completed" and run.paid_count == eligible and len(run.executions) == 2


async def _ledger_at_least(db, n: int) -> bool:
    return await db["ledger"].count_documents({}) >= n


async def test_p21_newly_approved_recipient_is_paid_by_the_same_month_top_up(db):
    """P2.1: someone approved during the month is paid by re-running that month's run (due its last day)."""
    store = ReliefStore(db)
    await store.ensure_indexes()
    await store.upsert_registry(make_registry(10))
    spec = RunSpec(
        "P2.1-2021-02-main-500103",
        RunKind.HOLIDAY,
        "2021-02",
        frozenset({"500103"}),
        {Category.DIBAO: Decimal("200.00"), Category.TEKUN: Decimal("300.00")},
    )
    await store.create_run(run_document(spec, "main", "500103", "c", datetime.now(UTC)))
    first = await execute_run(store, spec.run_id, by="c")
    newcomer = make_registry(1)[0].model_copy(update={"id": "R9999999", "approved_on": date(2021, 2, 26)})
    await store.upsert_registry([newcomer])
    top_up = await execute_run(store, spec.run_id, by="c")
    assert top_up.inserted == 1 and top_up.ledger_count == first.ledger_count + 1
    again = await store.get_run(spec.run_id)
    assert again is not None and again.due_on == "2021-02-28"
