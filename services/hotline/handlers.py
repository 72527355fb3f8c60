"""Kafka consumers of the hotline (downstream events -> caller-facing status, in batches) and the outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import structlog
from faststream.kafka import KafkaRouter
from pydantic import ValidationError

from common.app import Runtime
from common.batches import BatchConsumer, Rejected
from common.consumer import backoff_delay
from contracts.events import (
    CASE_LIFECYCLE_TOPIC,
    GRANT_EVENTS_TOPIC,
    HELP_REQUESTED_TOPIC,
    SLA_EVENTS_TOPIC,
    read_event,
)
from contracts.events.hotline import HelpRequested
from contracts.events.router import CasesMerged
from services.hotline.domain import OtherUpdate, StatusEvent
from services.hotline.intake import Hotline
from services.hotline.store import HotlineStore

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = structlog.get_logger("hotline.handlers")

STATUS_TOPICS = (CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC)


def read_downstream(topic: str, value: bytes | None) -> StatusEvent:
    """A router / relief / notify record as its contract event; one of a type this version does not know
    is kept as an `OtherUpdate` (the status shows it as a generic update). Raises `ValidationError` for a
    record that is not an event of the topic."""
    event = read_event(topic, value)
    return event if event is not None else OtherUpdate.model_validate_json(value or b"")


def downstream_targets(event: StatusEvent) -> list[tuple[str, str]]:
    """The cases an event concerns, each with the id it is kept under there: a merge concerns two cases,
    the child (case_id) and the case it went into."""
    targets = [(event.case_id, str(event.event_id))]
    if isinstance(event, CasesMerged):
        targets.append((event.into_case_id, f"{event.event_id}:{event.into_case_id}"))
    return targets


async def apply_downstream_events(
    store: HotlineStore, records: Sequence[ConsumerRecord], topics: Mapping[str, str] | None = None
) -> Rejected:
    """Record a batch of downstream events for the caller-facing status of the cases they concern (one
    bounded set of round trips for the batch); a record that is not an event is returned to be
    dead-lettered. `topics` maps the topics consumed (a namespace applied) to their contract names."""
    rejected: Rejected = []
    events: list[tuple[str, str, StatusEvent]] = []
    for record in records:
        try:
            event = read_downstream((topics or {}).get(record.topic, record.topic), record.value)
        except ValidationError as exc:
            rejected.append((record, exc))
            continue
        events += [(case_id, kept_as, event) for case_id, kept_as in downstream_targets(event)]
    changed = await store.apply_events(events)
    if changed:
        log.debug("case statuses updated", cases=len(changed), records=len(records))
    return rejected


def build_subscribers(runtime: Runtime[Hotline]) -> KafkaRouter | None:
    """The hotline's downstream events are consumed in batches (`status_consumer`), not one by one."""
    return None


async def status_consumer(runtime: Runtime[Hotline]) -> None:
    """Background loop: the caller-facing status projection, a batch of downstream events at a time."""
    settings = runtime.service.settings
    store = runtime.service.store
    topics = {settings.topic(topic): topic for topic in STATUS_TOPICS}
    await BatchConsumer(
        name="status",
        topics=tuple(topics),
        group_id=settings.consumer_group,
        handler=lambda records: apply_downstream_events(store, records, topics),
        max_records=settings.status_batch_size,
    ).run(runtime)


async def observe_calls(store: HotlineStore, records: Sequence[ConsumerRecord]) -> Rejected:
    """Calls taken by any hotline process (this one's too), into this process's repeat-caller memory."""
    for record in records:
        try:
            event = read_event(HELP_REQUESTED_TOPIC, record.value)
        except ValidationError:
            continue  # not a call: nothing to remember (the router dead-letters it)
        if isinstance(event, HelpRequested):
            store.callers.observe(event.case_id, store.caller_key_ids(store.keys_of(event)))
    return []


async def caller_feed(runtime: Runtime[Hotline]) -> None:
    """Background loop: every hotline process reads every call from the help-request topic (no consumer
    group, from the latest), so the repeat-caller index it keeps in memory knows the calls the other
    processes take; once the feed runs, the index is loaded from the store."""
    settings = runtime.service.settings
    store = runtime.service.store
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


async def search_backfill(runtime: Runtime[Hotline]) -> None:
    """Once per database: file the cases taken before the search index in it (search_index.py)."""
    store = runtime.service.store
    await store.search_index.backfill_once(store.intakes, store.counters)


async def outbox_relay(runtime: Runtime[Hotline]) -> None:
    """Publish what the API left in the outbox, in order, once Kafka is (back) up."""
    await runtime.service.publisher.run_relay()
