"""Kafka consumers of the hotline (downstream events -> caller-facing status, in batches) and the outbox relay."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from faststream.kafka import KafkaRouter
from pydantic import ValidationError

from common.app import Runtime
from common.batches import BatchConsumer, Rejected
from common.consumer import backoff_delay
from contracts.events import (
    BAD_RECORD,
    CASE_LIFECYCLE_TOPIC,
    GRANT_EVENTS_TOPIC,
    HELP_REQUESTED_TOPIC,
    SLA_EVENTS_TOPIC,
    UnknownEventType,
    read_event,
)
from contracts.events.care import CARE_EVENTS_TOPIC, OutreachProposed
from contracts.events.hotline import Caller, HelpRequested, Outreach
from contracts.events.router import CasesMerged
from services.hotline.domain import OtherUpdate, StatusEvent, case_day
from services.hotline.domain.repeats import Repeat, repeat_rules, repeated_calls
from services.hotline.intake import Hotline, take_help_request
from services.hotline.store import HotlineStore

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = structlog.get_logger("hotline.handlers")

STATUS_TOPICS = (CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC)


def read_downstream(topic: str, value: bytes | None) -> StatusEvent:
    """A router / relief / notify record as its contract event; one of a type this version does not know
    is kept as an `OtherUpdate` (the status shows it as a generic update). Raises `ValidationError` for a
    record that is not an event of the topic."""
    try:
        return read_event(topic, value)
    except UnknownEventType:
        return OtherUpdate.model_validate_json(value or b"")


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
        linger_ms=settings.consumer_linger_ms,
    ).run(runtime)


async def observe_calls(store: HotlineStore, records: Sequence[ConsumerRecord]) -> Rejected:
    """Calls taken by any hotline process (this one's too), into this process's repeat-caller memory."""
    for record in records:
        try:
            event = read_event(HELP_REQUESTED_TOPIC, record.value)
        except BAD_RECORD:
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
    runtime.warm_up["caller_index"] = store.callers.memory.loaded
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


OUTREACH_OPERATOR = "outreach"  # who "takes" a proactive case: the discovery rules (P2.3), not an operator


async def file_outreach(hotline: Hotline, records: Sequence[ConsumerRecord], topic: str) -> Rejected:
    """P2.3 (未诉先办): file each proposed outreach through the normal intake as a proactive case, once per
    proposal (its id is the intake's idempotency key: a redelivery gets the same case back). Other care
    events pass by; a record that is not a valid event is dead-lettered."""
    rejected: Rejected = []
    for record in records:
        try:
            event = read_event(topic, record.value)
        except BAD_RECORD as exc:
            rejected.append((record, exc))
            continue
        if not isinstance(event, OutreachProposed):
            continue
        taken = await take_help_request(
            hotline,
            operator_id=OUTREACH_OPERATOR,
            channel="outreach",
            caller=Caller(name=event.name or "主动发现对象", phone=""),
            place=event.place,
            needs=list(event.needs),
            household_status=event.household_status,
            special_groups=event.special_groups,
            description=event.description,
            idempotency_key=event.proposal_id,
            outreach=Outreach(
                proposal_id=event.proposal_id,
                rule_id=event.rule_id,
                provisions=event.provisions,
                household=event.household,
            ),
        )
        log.info(
            "outreach filed as a proactive case",
            case_id=taken.event.case_id,
            rule_id=event.rule_id,
            replayed=taken.replayed,
        )
    return rejected


async def outreach_consumer(runtime: Runtime[Hotline]) -> None:
    """Background loop: outreach proposals (relief's care topic) filed as proactive cases (P2.3)."""
    hotline = runtime.service
    settings = hotline.settings
    await BatchConsumer(
        name="outreach",
        topics=(settings.topic(CARE_EVENTS_TOPIC),),
        group_id=f"{settings.consumer_group}-outreach",
        handler=lambda records: file_outreach(hotline, records, CARE_EVENTS_TOPIC),
        max_records=50,
    ).run(runtime)


async def file_repeats(hotline: Hotline, records: Sequence[ConsumerRecord], topic: str) -> Rejected:
    """P2.3 (D-P2.3-REPEATED-CALLS, `data/discovery.yaml`): a household whose calls reach the rule's count
    within its window gets a proactive case, filed through the normal intake once per household and
    window (the proposal id is the intake's idempotency key). Counted from the repeat-caller index (this
    process's memory once loaded), off the operator's path. A proactive case is not looked at (it is no
    call), but it is filed under the household like any case, so operators see it among the household's
    open cases, and it counts among the household's cases of its window."""
    rejected: Rejected = []
    for record in records:
        try:
            event = read_event(topic, record.value)
        except BAD_RECORD as exc:
            rejected.append((record, exc))  # dead-lettered here too, like every consumer of the topic
            continue
        if not isinstance(event, HelpRequested) or event.outreach is not None:
            continue
        household = hotline.store.keys_of(event).get("household")
        if household is None:
            continue
        views = await hotline.store.read_callers({"household": household})
        view = views.get(f"household:{household}")
        on = datetime.strptime(case_day(event.received_at), "%Y%m%d").date()
        for found in repeated_calls(household, view.cases if view else (), event.case_id, repeat_rules(), on):
            await _file_repeat(hotline, event, household, found)
    return rejected


async def _file_repeat(hotline: Hotline, call: HelpRequested, household: str, found: Repeat) -> None:
    rule = found.rule
    taken = await take_help_request(
        hotline,
        operator_id=OUTREACH_OPERATOR,
        channel="outreach",
        caller=Caller(name=call.caller.name, phone=""),
        place=call.place,
        needs=list(rule.needs),
        household_status=call.household_status,
        special_groups=call.special_groups,
        description=f"【主动发现 {rule.id}】{rule.description_zh}（{rule.within_days}天内第{found.calls}次，"
        f"最近一次 {call.case_id}） | [Proactive {rule.id}] {rule.description_en} "
        f"({found.calls} cases in {rule.within_days} days, latest {call.case_id})",
        idempotency_key=found.proposal_id,
        outreach=Outreach(
            proposal_id=found.proposal_id,
            rule_id=rule.id,
            provisions=rule.provisions,
            household=f"household:{household[:24]}",
        ),
    )
    if not taken.replayed:
        log.info("repeated calls filed as a proactive case", case_id=taken.event.case_id, rule_id=rule.id)


async def repeats_consumer(runtime: Runtime[Hotline]) -> None:
    """Background loop: every call, for the repeated-calls discovery rule (P2.3), in a group of its own."""
    hotline = runtime.service
    settings = hotline.settings
    await BatchConsumer(
        name="repeats",
        topics=(settings.topic(HELP_REQUESTED_TOPIC),),
        group_id=f"{settings.consumer_group}-repeats",
        handler=lambda records: file_repeats(hotline, records, HELP_REQUESTED_TOPIC),
        max_records=200,
    ).run(runtime)


async def search_backfill(runtime: Runtime[Hotline]) -> None:
    """Once per database: file the cases taken before the search index in it (search_index.py)."""
    store = runtime.service.store
    await store.search_index.backfill_once(store.intakes, store.intakes_archive, store.counters)


async def outbox_relay(runtime: Runtime[Hotline]) -> None:
    """Publish what the API left in the outbox, in order, once Kafka is (back) up."""
    await runtime.service.publisher.run_relay()
