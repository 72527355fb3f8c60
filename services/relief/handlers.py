"""Kafka subscribers of relief (thin): help requests bring the caller's facts, dispatches trigger the
rules (P5.2a-d, P5.1), merges cancel a duplicate case's open proposals. All are idempotent:
entitlements are unique per (case, rule)."""

from __future__ import annotations

from typing import Any

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.events.hotline import HELP_REQUESTED_TOPIC, HelpRequested
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, CasesMerged

log = structlog.get_logger("relief.handlers")


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    """`runtime.store` is the `Relief` use-case object built at start-up."""
    router = KafkaRouter()
    group = runtime.settings.consumer_group

    @router.subscriber(runtime.settings.topic(HELP_REQUESTED_TOPIC), group_id=group, auto_offset_reset="earliest",
                       ack_policy=SUBSCRIBER_ACK_POLICY)
    async def on_help_requested(request: HelpRequested) -> None:
        await runtime.store.on_help_requested(request)

    @router.subscriber(runtime.settings.topic(CASE_LIFECYCLE_TOPIC), group_id=group, auto_offset_reset="earliest",
                       ack_policy=SUBSCRIBER_ACK_POLICY)
    async def on_case_lifecycle(body: dict[str, Any]) -> None:
        # Dispatches and merges concern relief; other lifecycle events (and types added later) pass by.
        if body.get("type") == "case.dispatched":
            await runtime.store.on_dispatched(CaseDispatched.model_validate(body))
        elif body.get("type") == "case.merged":
            await runtime.store.on_cases_merged(CasesMerged.model_validate(body))

    return router
