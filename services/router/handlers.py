"""Kafka subscribers of the router (thin: decide, record, publish)."""

from __future__ import annotations

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.kafka import SUBSCRIBER_ACK_POLICY, publish_event
from contracts.events.hotline import HelpRequested
from contracts.events.router import CaseDispatched, DepartmentTask, department_queue_topic
from services.router.domain import route

log = structlog.get_logger("router.handlers")


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    router = KafkaRouter()

    @router.subscriber(
        HelpRequested.TOPIC,
        group_id=runtime.settings.consumer_group,
        auto_offset_reset="earliest",
        ack_policy=SUBSCRIBER_ACK_POLICY,
    )
    async def on_help_requested(request: HelpRequested) -> None:
        routing = route(request)
        dispatched = CaseDispatched(
            case_id=request.case_id,
            correlation_id=request.correlation_id,
            district=request.place.district,
            lead=routing.lead,
            co_handlers=routing.co_handlers,
            needs=request.needs,
            sla_class=routing.sla_class,
            emergency=request.emergency,
            decision=routing.decision,
        )
        await runtime.store.create_case(
            {"_id": request.case_id, "lead": routing.lead.model_dump(), "status": "dispatched",
             "emergency": request.emergency, "received_at": request.received_at,
             "dispatch": dispatched.model_dump(mode="json")}
        )
        # Publishing again on redelivery is harmless: consumers dedupe on event id / case id.
        for assignment in (routing.lead, *routing.co_handlers):
            task = DepartmentTask(
                case_id=request.case_id,
                task_id=f"{request.case_id}:{assignment.department}",
                department=assignment.department,
                district=assignment.district,
                role=assignment.role,
                needs=request.needs,
                sla_class=routing.sla_class,
                emergency=request.emergency,
                summary=request.description[:200],
            )
            await publish_event(runtime.broker, task, topic=department_queue_topic(assignment.department))
        await publish_event(runtime.broker, dispatched)
        log.info("case dispatched", case_id=request.case_id, lead=routing.lead.department)

    return router
