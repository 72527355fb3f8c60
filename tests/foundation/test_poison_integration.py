"""Poison on every consumed topic: the four services run as processes on topics of their own; on every
topic each of them consumes (as the service itself reports its consumer groups) go a record that is not
JSON, one that fails its schema, one of 1 MB and one of a type no version knows. Each consumer dead-letters
all four with its error and moves on: its lag on the topic comes back to 0, and its dead letters show the
four original offsets. A new consumer or topic is covered without a change here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError

from common.auth import issue_token
from common.settings import ServiceSettings
from contracts.events import (
    CASE_LIFECYCLE_TOPIC,
    GRANT_EVENTS_TOPIC,
    HELP_REQUESTED_TOPIC,
    SLA_EVENTS_TOPIC,
    UnknownEventType,
    all_event_classes,
    department_queue_topic,
    dlq_topic,
    read_event,
)
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.integration

SERVICES = ("hotline", "router", "relief", "notify")
TOKENS = ServiceSettings(service_name="poison")
ONE_MB = 1_000_000


def token(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {issue_token(TOKENS, sub=f'{role}-poison', role=role, district='500103')}"}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, mongodb_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceSet]:
    with ServiceSet(
        kafka_bootstrap, mongodb_url, SERVICES, tmp_path_factory.mktemp("poison"), isolated_topics=True
    ) as services:
        yield services


def consumed(stack: ServiceSet) -> dict[str, dict[str, str]]:
    """service -> {namespaced topic: consumer group}, as each service reports its delivery figures."""
    out: dict[str, dict[str, str]] = {}
    for name in SERVICES:
        reply = httpx.get(f"{stack[name].url}/api/v1/status/delivery", headers=token("coordinator"), timeout=30)
        reply.raise_for_status()
        out[name] = {lag["topic"]: lag["group"] for lag in reply.json()["consumer_lag"]}
    return out


def known_type(topic: str) -> str:
    """A type the topic carries (its record then fails only on the fields)."""
    for cls in all_event_classes():
        event_type = cls.model_fields["type"].default
        try:
            read_event(topic, json.dumps({"type": event_type}).encode())
        except UnknownEventType:
            continue
        except ValidationError:
            return str(event_type)
    raise AssertionError(f"no contract event type is known on {topic}")


def poison(contract_topic: str) -> list[bytes]:
    kind = known_type(contract_topic)
    return [
        b"\xff\xfe this is not JSON {",
        json.dumps({"type": kind, "case_id": 12345, "occurred_at": "yesterday"}).encode(),
        json.dumps({"type": kind, "padding": "x" * ONE_MB}).encode(),
        json.dumps({"type": "x.type_no_version_knows", "note": "后来才有的事件类型"}, ensure_ascii=False).encode(),
    ]


async def test_every_consumer_dead_letters_poison_on_every_topic_it_consumes_and_moves_on(stack: ServiceSet) -> None:
    namespace = stack.namespace
    deadline = time.monotonic() + 90
    while True:  # the services register their consumers as each one starts
        reported = consumed(stack)
        topics = {t.removeprefix(namespace) for groups in reported.values() for t in groups}
        wanted = {HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC}
        if all(reported.values()) and wanted <= topics or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert all(reported.values()), reported
    assert wanted <= topics, f"not consumed by any service: {wanted - topics}"
    assert department_queue_topic("civil_affairs") in topics, topics  # the department queues too

    offsets: dict[str, list[int]] = {}
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka, max_request_size=2 * ONE_MB, acks="all")
    await producer.start()
    try:
        for topic in sorted({t for groups in reported.values() for t in groups}):
            for n, value in enumerate(poison(topic.removeprefix(namespace))):
                sent = await producer.send_and_wait(topic, value, key=f"poison-{n}".encode())
                offsets.setdefault(topic, []).append(sent.offset)
    finally:
        await producer.stop()

    pending: dict[tuple[str, str], str] = {}
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        pending = {}
        for name in SERVICES:
            base = stack[name].url
            status = httpx.get(f"{base}/api/v1/status/delivery", headers=token("coordinator"), timeout=30).json()
            lags = {(lag["group"], lag["topic"]): lag["lag"] for lag in status["consumer_lag"]}
            for topic, group in reported[name].items():
                if lags.get((group, topic), 1) != 0:
                    pending[(name, topic)] = f"lag {lags.get((group, topic))}"
                    continue
                letters = httpx.get(
                    f"{base}/api/v1/admin/dead-letters",
                    params={"topic": dlq_topic(topic)},
                    headers=token("admin"),
                    timeout=30,
                ).json()
                mine = {d["original_offset"] for d in letters if d["service"] == name and d["original_topic"] == topic}
                if not set(offsets[topic]) <= mine:
                    pending[(name, topic)] = f"dead letters {sorted(mine)} of {offsets[topic]}"
        if not pending:
            break
        await asyncio.sleep(2)
    assert not pending, {f"{svc} {topic}": why for (svc, topic), why in pending.items()}
    pairs = sum(len(groups) for groups in reported.values())
    print(f"poison: {4 * len(offsets)} records on {len(offsets)} topics, dead-lettered by {pairs} consumer-topic pairs")

    # The reasons are kept: the unknown type is named, the 1 MB record was cut to its head.
    topic = namespace + CASE_LIFECYCLE_TOPIC
    notify_letters: list[dict[str, Any]] = httpx.get(
        f"{stack['notify'].url}/api/v1/admin/dead-letters",
        params={"topic": dlq_topic(topic)},
        headers=token("admin"),
        timeout=30,
    ).json()
    by_offset = {d["original_offset"]: d for d in notify_letters if d["service"] == "notify"}
    not_json, bad_fields, big, unknown = (by_offset[o] for o in offsets[topic])
    assert unknown["error_type"] == "UnknownEventType" and "x.type_no_version_knows" in unknown["error"]
    assert bad_fields["error_type"] == not_json["error_type"] == "ValidationError"
    detail = httpx.get(
        f"{stack['notify'].url}/api/v1/admin/dead-letters/{dlq_topic(topic)}/{big['partition']}/{big['offset']}",
        headers=token("admin"),
        timeout=30,
    ).json()
    assert detail["headers"]["x-dlq-truncated-from-bytes"] == str(len(poison(CASE_LIFECYCLE_TOPIC)[2]))
    assert detail["value_bytes"] == 64 * 1024
