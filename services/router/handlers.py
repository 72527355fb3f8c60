"""Kafka consumers of the router (thin: decide, record, publish).

- help requests → see `services.router.intake` (batched, on its own broker);
- the department queues → the router's own desk marks each task queued (visible to that department's
  workers): one batch consumer over every queue it serves, one pass of the shared write path per batch;
- hotline case events → a reopened case is routed again.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import structlog
from faststream.kafka import KafkaRouter
from pydantic import ValidationError

from common.app import Runtime
from common.batches import BatchConsumer, Rejected
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.codes import departments
from contracts.events import utcnow
from contracts.events.hotline import CaseReopened, HotlineCaseEvent
from contracts.events.router import DepartmentTask, department_queue_message
from services.router.cases import CaseService
from services.router.domain.case import Case
from services.router.domain.dispatching import mark_queued, reopen
from services.router.settings import Settings

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = structlog.get_logger("router.handlers")


async def mark_tasks_queued(service: CaseService, records: Sequence[ConsumerRecord]) -> Rejected:
    """The desk: every task of a batch of department-queue records marked queued, one write-path pass for
    all their cases. Withdrawals were applied when decided; records that are not queue messages, or whose
    case refused the change, come back to be dead-lettered."""
    rejected: Rejected = []
    changes: dict[str, list[Callable[[Case], object]]] = {}
    records_of: dict[str, list[ConsumerRecord]] = {}
    now = utcnow()
    for record in records:
        try:
            message = department_queue_message.validate_json(record.value or b"")
        except ValidationError as exc:
            rejected.append((record, exc))
            continue
        if isinstance(message, DepartmentTask):
            changes.setdefault(message.case_id, []).append(
                lambda case, task_id=message.task_id: mark_queued(case, task_id, now)
            )
            records_of.setdefault(message.case_id, []).append(record)
    for case_id, error in (await service.update_many(changes)).items():
        rejected += [(record, error) for record in records_of[case_id]]
    return rejected


async def desk_consumer(runtime: Runtime) -> None:
    """Background loop: the router's own desk over the department queues it serves (all by default)."""
    settings: Settings = runtime.settings  # type: ignore[assignment]
    if not settings.desk_enabled:
        return
    desk = settings.desk_departments or tuple(departments())
    await BatchConsumer(
        name="desk",
        topics=tuple(settings.department_topic(d) for d in desk),
        group_id=f"{settings.consumer_group}.desk",
        handler=lambda records: mark_tasks_queued(runtime.service, records),
    ).run(runtime)


def build_subscribers(runtime: Runtime) -> KafkaRouter:
    settings: Settings = runtime.settings  # type: ignore[assignment]
    router = KafkaRouter()
    group = settings.consumer_group

    def service() -> CaseService:
        return runtime.service

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
        await svc.update(
            event.case_id,
            lambda case: reopen(
                case,
                svc.catalogue,
                event_id=str(event.event_id),
                actor=f"hotline:{event.operator_id}",
                reason=event.reason,
                now=utcnow(),
            ),
        )
        log.info("case reopened", case_id=event.case_id)

    return router
