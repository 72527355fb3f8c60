"""Kafka subscribers of the router (thin: decide, record, publish).

- help requests → see `services.router.intake` (batched, on its own broker);
- each department queue → the router's own desk marks the task queued (visible to that department's
  workers); one subscriber and consumer group per department, so departments never block each other;
- hotline case events → a reopened case is routed again.
"""

from __future__ import annotations

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.codes import departments
from contracts.events.hotline import CaseReopened, HotlineCaseEvent
from contracts.events.router import DepartmentQueueMessage, DepartmentTask
from services.router.cases import CaseService
from services.router.domain.dispatching import mark_queued, reopen, utcnow
from services.router.settings import Settings

log = structlog.get_logger("router.handlers")


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    router = KafkaRouter()
    group = settings.consumer_group

    def service() -> CaseService:
        return runtime.store

    desk = (settings.desk_departments or tuple(departments())) if settings.desk_enabled else ()
    for department in desk:

        @router.subscriber(
            settings.department_topic(department),
            group_id=f"{group}.desk.{department}",
            auto_offset_reset="earliest",
            ack_policy=SUBSCRIBER_ACK_POLICY,
        )
        async def on_department_queue(message: DepartmentQueueMessage) -> None:
            if not isinstance(message, DepartmentTask):
                return  # withdrawals were applied when decided; the desk needs nothing more
            task_id = message.task_id
            if await service().store.get(message.case_id) is None:
                log.warning("task for a case this router does not know; skipped", case_id=message.case_id)
                return
            await service().update(message.case_id, lambda case: mark_queued(case, task_id, utcnow()))

    @router.subscriber(
        settings.hotline_case_events_topic,
        group_id=group,
        auto_offset_reset="earliest",
        ack_policy=SUBSCRIBER_ACK_POLICY,
    )
    async def on_hotline_case_event(event: HotlineCaseEvent) -> None:
        if not isinstance(event, CaseReopened):
            return
        svc = service()
        if await svc.store.get(event.case_id) is None:
            log.warning("reopened case unknown to the router; skipped", case_id=event.case_id)
            return
        await svc.update(event.case_id, lambda case: reopen(
            case, svc.catalogue, event_id=str(event.event_id), actor=f"hotline:{event.operator_id}",
            reason=event.reason, now=utcnow()))
        log.info("case reopened", case_id=event.case_id)

    return router
