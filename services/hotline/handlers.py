"""Kafka consumers of the hotline (downstream events -> caller-facing status, in batches) and the outbox relay."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.batches import BatchConsumer, Rejected
from common.consumer import PermanentError, backoff_delay
from contracts.events import CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, SLA_EVENTS_TOPIC
from contracts.events.hotline import HelpRequested
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = structlog.get_logger("hotline.handlers")

STATUS_TOPICS = (CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC)


def downstream_targets(body: dict[str, Any]) -> list[tuple[str, str]]:
    """The cases a router / relief / notify event concerns, each with the id it is kept under there: a merge
    concerns two cases, the child (case_id) and the case it went into."""
    case_id, event_id = body.get("case_id"), body.get("event_id")
    if not isinstance(case_id, str) or not isinstance(event_id, str):
        raise PermanentError("event without case_id or event_id")
    targets = [(case_id, event_id)]
    if body.get("type") == "case.merged" and isinstance(into := body.get("into_case_id"), str):
        targets.append((into, f"{event_id}:{into}"))
    return targets


async def apply_downstream_events(store: HotlineStore, records: Sequence[ConsumerRecord]) -> Rejected:
    """Record a batch of downstream events for the caller-facing status of the cases they concern (one
    bounded set of round trips for the batch); a record that is not an event is returned to be
    dead-lettered."""
    rejected: Rejected = []
    events: list[tuple[str, str, dict[str, Any]]] = []
    for record in records:
        try:
            body = json.loads(record.value or b"")
            if not isinstance(body, dict):
                raise PermanentError("an event is a JSON object")
            events += [(case_id, event_id, body) for case_id, event_id in downstream_targets(body)]
        except (ValueError, PermanentError) as exc:
            rejected.append((record, exc))
    changed = await store.apply_events(events)
    if changed:
        log.debug("case statuses updated", cases=len(changed), records=len(records))
    return rejected


def build_subscribers(runtime: Runtime) -> KafkaRouter | None:
    """The hotline's downstream events are consumed in batches (`status_consumer`), not one by one."""
    return None


async def status_consumer(runtime: Runtime) -> None:
    """Background loop: the caller-facing status projection, a batch of downstream events at a time."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    store: HotlineStore = runtime.service.store
    await BatchConsumer(
        name="status",
        topics=tuple(settings.topic(t) for t in STATUS_TOPICS),
        group_id=settings.consumer_group,
        handler=lambda records: apply_downstream_events(store, records),
        max_records=settings.status_batch_size,
    ).run(runtime)


async def observe_calls(store: HotlineStore, records: Sequence[ConsumerRecord]) -> Rejected:
    """Calls taken by any hotline process (this one's too), into this process's repeat-caller memory."""
    for record in records:
        try:
            event = HelpRequested.model_validate_json(record.value or b"")
        except ValueError:
            continue  # not a call: nothing to remember (the router dead-letters it)
        store.callers.observe(event.case_id, store.caller_key_ids(store.keys_of(event)))
    return []


async def caller_feed(runtime: Runtime) -> None:
    """Background loop: every hotline process reads every call from the help-request topic (no consumer
    group, from the latest), so the repeat-caller index it keeps in memory knows the calls the other
    processes take; once the feed runs, the index is loaded from the store."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    store: HotlineStore = runtime.service.store
    feed_running = asyncio.Event()
    loading = asyncio.ensure_future(_load_callers(store, feed_running))
    try:
        await BatchConsumer(
            name="callers",
            topics=(settings.topic(HELP_REQUESTED_TOPIC),),
            group_id=None,
            handler=lambda records: observe_calls(store, records),
            auto_offset_reset="latest",
            started=feed_running,
        ).run(runtime)
    finally:
        loading.cancel()


async def _load_callers(store: HotlineStore, feed_running: asyncio.Event) -> None:
    await feed_running.wait()
    failures = 0
    while not store.callers.memory.ready:
        try:
            await store.callers.load()
        except Exception as exc:  # noqa: BLE001 - lookups read the store meanwhile; try again
            failures += 1
            log.warning("caller index not loaded yet", error=repr(exc))
            await asyncio.sleep(backoff_delay(failures, 1.0, 30.0))


async def outbox_relay(runtime: Runtime) -> None:
    """Publish what the API left in the outbox, in order, once Kafka is (back) up."""
    await runtime.service.publisher.run_relay()
