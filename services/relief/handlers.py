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

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import ValidationError

from common.batches import BatchConsumer, Rejected
from contracts.events.hotline import HELP_REQUESTED_TOPIC, HelpRequested
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, CasesMerged

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream.kafka import KafkaRouter

    from common.app import Runtime
    from services.relief.intake import IntakeEvent
    from services.relief.service import Relief
    from services.relief.settings import Settings

log = structlog.get_logger("relief.handlers")
LIFECYCLE_TYPES = {"case.dispatched": CaseDispatched, "case.merged": CasesMerged}


def parse(record: ConsumerRecord, help_topic: str) -> IntakeEvent | None:
    """The event a record carries; None for lifecycle events relief does not use (signed for, resolved, …,
    and types added later: they pass by). Raises ValueError (a ValidationError) for a bad record."""
    if record.topic == help_topic:
        return HelpRequested.model_validate_json(record.value or b"")
    body: Any = json.loads(record.value or b"")
    if not isinstance(body, dict):
        raise ValueError("an event is a JSON object")
    kind = LIFECYCLE_TYPES.get(body.get("type"))  # type: ignore[arg-type]
    return kind.model_validate(body) if kind is not None else None


async def take_records(relief: Relief, records: Sequence[ConsumerRecord], *, help_topic: str) -> Rejected:
    """Take a batch of records (both topics, any mix); the records to dead-letter, each with its error."""
    rejected: Rejected = []
    events: list[tuple[ConsumerRecord, IntakeEvent]] = []
    for record in records:
        try:
            event = parse(record, help_topic)
        except (ValidationError, ValueError) as exc:
            rejected.append((record, exc))
            continue
        if event is not None:
            events.append((record, event))
    if events:
        rejected += await relief.take(events)
    log.debug("relief batch taken", records=len(records), events=len(events), rejected=len(rejected))
    return rejected


def build_subscribers(runtime: Runtime) -> KafkaRouter | None:
    """Relief consumes in batches (`intake_consumer`), not one record at a time."""
    return None


async def intake_consumer(runtime: Runtime) -> None:
    """Background loop: relief's batch consumer of help requests and case lifecycle events."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    relief: Relief = runtime.service
    help_topic = settings.topic(HELP_REQUESTED_TOPIC)
    await BatchConsumer(
        name="intake",
        topics=(help_topic, settings.topic(CASE_LIFECYCLE_TOPIC)),
        group_id=settings.consumer_group,
        handler=lambda records: take_records(relief, records, help_topic=help_topic),
        max_records=settings.intake_batch_size,
    ).run(runtime)
