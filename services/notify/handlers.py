"""Kafka subscribers of notify (thin: start and stop clocks)."""

from __future__ import annotations

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, CaseLifecycleEvent
from services.notify.domain import resolution_due

log = structlog.get_logger("notify.handlers")


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        CASE_LIFECYCLE_TOPIC,
        group_id=runtime.settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=SUBSCRIBER_ACK_POLICY,
    )
    async def on_case_event(event: CaseLifecycleEvent) -> None:
        if isinstance(event, CaseDispatched):
            await runtime.store.start_clock(
                event.case_id,
                district=event.district,
                department=event.lead.department,
                sla_class=event.sla_class,
                started_at=event.occurred_at,
                due_at=resolution_due(event.sla_class, event.occurred_at),
                emergency=event.emergency,
            )
            log.info("clock started", case_id=event.case_id)

    return router
