"""Kafka subscribers of the hotline (downstream events -> caller-facing status) and the outbox relay."""

from __future__ import annotations

from typing import Any

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.consumer import PermanentError
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.events import CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore

log = structlog.get_logger("hotline.handlers")

STATUS_TOPICS = (CASE_LIFECYCLE_TOPIC, GRANT_EVENTS_TOPIC, SLA_EVENTS_TOPIC)


async def apply_downstream_event(store: HotlineStore, body: dict[str, Any]) -> bool:
    """Record a router / relief / notify event for the caller-facing status of the case(s) it concerns.

    Events of cases this hotline never took are ignored; an event seen before (redelivery) changes
    nothing. A merge concerns two cases: the child (case_id) and the case it went into."""
    case_id, event_id = body.get("case_id"), body.get("event_id")
    if not isinstance(case_id, str) or not isinstance(event_id, str):
        raise PermanentError("event without case_id or event_id")
    targets = [case_id]
    if body.get("type") == "case.merged" and isinstance(body.get("into_case_id"), str):
        targets.append(body["into_case_id"])
    applied = False
    for target in targets:
        if await store.get_intake(target) is None:
            continue
        record_id = event_id if target == case_id else f"{event_id}:{target}"
        await store.record_event(target, body, event_id=record_id)
        # Refresh even on redelivery: a crash may have come between recording and projecting.
        await store.refresh_status(target)
        applied = True
    return applied


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()
    settings: Settings = runtime.settings  # type: ignore[assignment]

    @router.subscriber(
        *(settings.topic(t) for t in STATUS_TOPICS),
        group_id=runtime.settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=SUBSCRIBER_ACK_POLICY,
    )
    async def on_downstream_event(body: dict[str, Any]) -> None:
        if await apply_downstream_event(runtime.store.store, body):
            log.info("case status updated", case_id=body.get("case_id"), event_type=body.get("type"))

    return router


async def outbox_relay(runtime: Runtime) -> None:
    """Publish what the API left in the outbox, in order, once Kafka is (back) up."""
    await runtime.store.publisher.run_relay()
