"""Notify's Kafka consumer (thin): a batch of router, hotline and relief records at a time, parsed into
contract events and handed to the clockwork in one pass of the write path.

Bodies are parsed here rather than by FastStream so that an event type this version does not know (the
router may add some) is logged and skipped instead of dead-lettered; a known type that fails validation
is returned to be dead-lettered, and the rest of the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import TypeAdapter, ValidationError

from common.app import Runtime
from common.batches import BatchConsumer, Rejected
from common.consumer import PermanentError
from contracts.events.hotline import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, HelpRequested, hotline_case_event
from contracts.events.relief import GRANT_EVENTS_TOPIC, grant_event
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, case_lifecycle_event
from services.notify.domain import case as case_rules
from services.notify.settings import Settings

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from services.notify.clockwork import Notify

log = structlog.get_logger("notify.handlers")

ADAPTERS: dict[str, TypeAdapter[Any]] = {
    CASE_LIFECYCLE_TOPIC: case_lifecycle_event,
    CASE_EVENTS_TOPIC: hotline_case_event,
    GRANT_EVENTS_TOPIC: grant_event,
    HELP_REQUESTED_TOPIC: TypeAdapter(HelpRequested),
}


def parse(adapter: TypeAdapter[Any], body: Any) -> Any | None:
    """The contract event, or None for an event type this version does not know."""
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        if any(err["type"] == "union_tag_invalid" for err in exc.errors()):
            log.info("event type not used by notify; skipped", type=body.get("type"), case_id=body.get("case_id"))
            return None
        raise


async def apply_records(runtime: Runtime, records: Sequence[ConsumerRecord]) -> Rejected:
    """Apply a batch of records: one write-path pass for all the cases they concern (events of one case
    in the order they came); records that are not valid events, or whose case refused them, come back
    to be dead-lettered."""
    notify: Notify = runtime.service
    adapters = {runtime.settings.topic(name): adapter for name, adapter in ADAPTERS.items()}
    rejected: Rejected = []
    steps, records_of, phones = [], {}, {}
    opened: set[str] = set()  # cases whose first event in this batch is the call that opens them
    for record in records:
        try:
            body = json.loads(record.value or b"")
            if not isinstance(body, dict):
                raise PermanentError("an event is a JSON object")
            event = parse(adapters[record.topic], body)
        except (ValueError, PermanentError) as exc:  # ValidationError is a ValueError
            rejected.append((record, exc))
            continue
        if event is None:
            continue
        if isinstance(event, HelpRequested):
            if event.case_id not in records_of:
                opened.add(event.case_id)
            # The phone is kept only to text the caller about this case; it is never logged or put in keys.
            phones[event.case_id] = event.caller.phone
        if isinstance(event, CaseDispatched):
            choice = notify.policy.choose(event.sla_class, event.occurred_at)
            if choice.fell_back:
                log.warning(
                    "unknown SLA class; the fallback class applies",
                    case_id=event.case_id,
                    requested=event.sla_class,
                    applied=choice.sla_class.name,
                    policy_version=choice.policy_version,
                )
        steps.append(
            (event.case_id, str(event.event_id), lambda state, e=event: case_rules.apply(state, e, notify.policy))
        )
        records_of.setdefault(event.case_id, []).append(record)
    await notify.store.remember_callers(phones)
    failed = await notify.clockwork.record_many(steps, new=opened)
    for case_id, error in failed.items():
        log.error("case refused its events", case_id=case_id, error=repr(error))
        rejected += [(record, error) for record in records_of[case_id]]
    if steps:
        log.debug("case events applied", events=len(steps), cases=len(records_of), records=len(records))
    return rejected


async def case_events_consumer(runtime: Runtime) -> None:
    """Background loop: every topic notify follows, a batch of records at a time, in one consumer group."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    await BatchConsumer(
        name="cases",
        topics=tuple(settings.topic(t) for t in ADAPTERS),
        group_id=settings.consumer_group,
        handler=lambda records: apply_records(runtime, records),
        max_records=settings.case_batch_size,
        auto_offset_reset=settings.kafka_start_from,
    ).run(runtime)
