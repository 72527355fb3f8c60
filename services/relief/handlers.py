"""Relief's Kafka consumer: one batch consumer (`common.batches.BatchConsumer`) over the help requests
(the caller's facts) and the router's lifecycle topic (dispatches trigger the rules, P5.2a-d and P5.1;
merges cancel a duplicate case's open proposals). A batch is taken in a bounded number of store round
trips (`services.relief.intake`), so the delivery rules are the shared ones: a record that fails
validation, or a case whose reported day has no dibao standard, is dead-lettered and the rest of the
batch goes on; a store or broker failure is retried, then the batch is redelivered; the offsets are
committed only after every entitlement is written. All is idempotent: entitlements are unique per
(case, rule), so a redelivered batch, or a second relief process handling the same records, proposes
nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import structlog

from common.batches import BatchConsumer, Rejected
from contracts.events import BAD_RECORD, read_event
from contracts.events.hotline import HELP_REQUESTED_TOPIC, HelpRequested
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, CasesMerged
from services.relief.settings import Settings

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream.kafka import KafkaRouter

    from common.app import Runtime
    from services.relief.intake import IntakeEvent
    from services.relief.service import Relief

log = structlog.get_logger("relief.handlers")
CONSUMED = (HELP_REQUESTED_TOPIC, CASE_LIFECYCLE_TOPIC)  # by their contract names


def contract_topics(settings: Settings) -> dict[str, str]:
    """The topics relief consumes, as configured (a prefix, maybe), mapped back to their contract names."""
    return {settings.topic(name): name for name in CONSUMED}


def parse(record: ConsumerRecord, topics: Mapping[str, str]) -> IntakeEvent | None:
    """The event a record carries; None for lifecycle events relief does not use (signed for, resolved, …:
    they pass by). Raises one of `BAD_RECORD` for a bad record or a type this version does not know."""
    match read_event(topics[record.topic], record.value):
        case HelpRequested() | CaseDispatched() | CasesMerged() as event:
            return event
        case _:
            return None


async def take_records(relief: Relief, records: Sequence[ConsumerRecord], *, topics: Mapping[str, str]) -> Rejected:
    """Take a batch of records (both topics, any mix); the records to dead-letter, each with its error.
    `topics` maps the consumed topic names to their contract names (`contract_topics`)."""
    rejected: Rejected = []
    events: list[tuple[ConsumerRecord, IntakeEvent]] = []
    for record in records:
        try:
            event = parse(record, topics)
        except BAD_RECORD as exc:
            rejected.append((record, exc))
            continue
        if event is not None:
            events.append((record, event))
    if events:
        rejected += await relief.take(events)
    log.debug("relief batch taken", records=len(records), events=len(events), rejected=len(rejected))
    return rejected


def build_subscribers(runtime: Runtime[Relief]) -> KafkaRouter | None:
    """Relief consumes in batches (`intake_consumer`), not one record at a time."""
    return None


async def registry_terms_backfill(runtime: Runtime[Relief]) -> None:
    """At start-up: file the registry records written before the registry search had terms (a store
    that is down makes it crash and be restarted, `common.app.supervise`)."""
    if filed := await runtime.service.store.file_registry_terms():
        log.info("registry records filed for search", records=filed)


async def intake_consumer(runtime: Runtime[Relief]) -> None:
    """Background loop: relief's batch consumer of help requests and case lifecycle events."""
    settings = runtime.settings
    if not isinstance(settings, Settings):
        raise TypeError("relief runs with its own settings (services.relief.settings.Settings)")
    relief = runtime.service
    topics = contract_topics(settings)
    await BatchConsumer(
        name="intake",
        topics=tuple(topics),
        group_id=settings.consumer_group,
        handler=lambda records: take_records(relief, records, topics=topics),
        max_records=settings.intake_batch_size,
        linger_ms=settings.consumer_linger_ms,
    ).run(runtime)
