"""Kafka subscribers of notify (thin: parse the contract event, hand it to the clockwork).

Bodies are parsed here rather than by FastStream so that an event type this version does not know (the
router may add some) is logged and skipped instead of dead-lettered; a known type that fails validation
still goes to the DLQ through the consumer policy.
"""

from __future__ import annotations

from typing import Any

import structlog
from faststream.kafka import KafkaRouter
from pydantic import TypeAdapter, ValidationError

from common.app import Runtime
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.events.hotline import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, HelpRequested, hotline_case_event
from contracts.events.relief import GRANT_EVENTS_TOPIC, grant_event
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, case_lifecycle_event
from services.notify.domain import case as case_rules

log = structlog.get_logger("notify.handlers")


def parse(adapter: TypeAdapter[Any], body: dict[str, Any]) -> Any | None:
    """The contract event, or None for an event type this version does not know."""
    try:
        return adapter.validate_python(body)
    except ValidationError as exc:
        if any(err["type"] == "union_tag_invalid" for err in exc.errors()):
            log.info("event type not used by notify; skipped", type=body.get("type"), case_id=body.get("case_id"))
            return None
        raise


async def apply_event(runtime: Runtime, event: Any) -> None:
    notify = runtime.store
    choice = notify.policy.choose(event.sla_class, event.occurred_at) if isinstance(event, CaseDispatched) else None
    if choice is not None and choice.fell_back:
        log.warning("unknown SLA class; the fallback class applies", case_id=event.case_id,
                    requested=event.sla_class, applied=choice.sla_class.name, policy_version=choice.policy_version)
    await notify.clockwork.record(event.case_id, str(event.event_id),
                                  lambda state: case_rules.apply(state, event, notify.policy))


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()
    group = runtime.settings.consumer_group

    topic = runtime.settings.topic

    def options(suffix: str = "") -> dict[str, Any]:
        # One consumer group per topic: members with different subscriptions in one group would make
        # every start-up a chain of rebalances; per-case order only matters within a topic.
        return {"group_id": group + suffix, "auto_offset_reset": runtime.settings.kafka_start_from,
                "ack_policy": SUBSCRIBER_ACK_POLICY}

    @router.subscriber(topic(CASE_LIFECYCLE_TOPIC), **options())
    async def on_case_lifecycle(body: dict[str, Any]) -> None:
        if (event := parse(case_lifecycle_event, body)) is not None:
            await apply_event(runtime, event)
            log.info("case event applied", type=event.type, case_id=event.case_id)

    @router.subscriber(topic(CASE_EVENTS_TOPIC), **options(".hotline-cases"))
    async def on_hotline_case_event(body: dict[str, Any]) -> None:
        if (event := parse(hotline_case_event, body)) is not None:
            await apply_event(runtime, event)

    @router.subscriber(topic(GRANT_EVENTS_TOPIC), **options(".grants"))
    async def on_grant_event(body: dict[str, Any]) -> None:
        if (event := parse(grant_event, body)) is not None:
            await apply_event(runtime, event)

    @router.subscriber(topic(HELP_REQUESTED_TOPIC), **options(".help-requests"))
    async def on_help_requested(request: HelpRequested) -> None:
        # The phone is kept only to text the caller about this case; it is never logged or put in keys.
        await runtime.store.store.remember_caller(request.case_id, request.caller.phone)
        await apply_event(runtime, request)

    return router
