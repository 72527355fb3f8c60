"""Kafka consumers of the router (thin: decide, record, publish).

- help requests → see `services.router.intake` (batched, on its own broker);
- the department queues → the router's own desk marks each task queued (visible to that department's
  workers): one batch consumer over every queue it serves, one pass of the shared write path per batch;
- hotline case events → a reopened case is routed again;
- notify's SLA events → escalations (督办) of the cases it holds, kept for their departments to answer
  (`services.router.escalations`), in batches on a consumer group of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

import structlog
from faststream.kafka import KafkaRouter

from common.app import Runtime
from common.batches import BatchConsumer, Rejected, raw_bodies
from common.kafka import SUBSCRIBER_ACK_POLICY
from contracts.codes import departments
from contracts.events import BAD_RECORD, CASE_EVENTS_TOPIC, read_event, utcnow
from contracts.events.hotline import CaseReopened
from contracts.events.router import DepartmentTask
from services.router.cases import CaseService
from services.router.domain.case import Case
from services.router.domain.dispatching import mark_queued, reopen
from services.router.escalations import record_escalations

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

log = structlog.get_logger("router.handlers")


def _mark_queued(task_id: str, now: datetime) -> Callable[[Case], bool]:
    return lambda case: mark_queued(case, task_id, now)


async def mark_tasks_queued(service: CaseService, records: Sequence[ConsumerRecord]) -> Rejected:
    """The desk: every task of a batch of department-queue records marked queued, one write-path pass for
    all their cases. Withdrawals were applied when decided, and types this version does not know pass by;
    records that are not valid queue messages, or whose case refused the change, come back to be
    dead-lettered."""
    rejected: Rejected = []
    changes: dict[str, list[Callable[[Case], object]]] = {}
    records_of: dict[str, list[ConsumerRecord]] = {}
    now = utcnow()
    namespace = service.settings.topic_namespace
    for record in records:
        try:
            # The record's topic carries this deployment's namespace; the contract knows the bare name.
            message = read_event(record.topic.removeprefix(namespace), record.value)
        except BAD_RECORD as exc:
            rejected.append((record, exc))
            continue
        if isinstance(message, DepartmentTask):
            changes.setdefault(message.case_id, []).append(_mark_queued(message.task_id, now))
            records_of.setdefault(message.case_id, []).append(record)
    for case_id, error in (await service.update_many(changes)).items():
        rejected += [(record, error) for record in records_of[case_id]]
    return rejected


async def desk_consumer(runtime: Runtime[CaseService]) -> None:
    """Background loop: the router's own desk over the department queues it serves (all by default)."""
    service = runtime.service
    settings = service.settings
    if not settings.desk_enabled:
        return
    desk = settings.desk_departments or tuple(departments())
    await BatchConsumer(
        name="desk",
        topics=tuple(settings.department_topic(d) for d in desk),
        group_id=f"{settings.consumer_group}.desk",
        handler=lambda records: mark_tasks_queued(service, records),
        linger_ms=settings.consumer_linger_ms,
    ).run(runtime)


async def escalation_consumer(runtime: Runtime[CaseService]) -> None:
    """Background loop: notify's escalations of the router's cases, for the departments to answer."""
    service = runtime.service
    settings = service.settings
    if not settings.escalations_enabled:
        return
    await BatchConsumer(
        name="escalations",
        topics=(settings.sla_events_topic,),
        group_id=f"{settings.consumer_group}.escalations",
        handler=lambda records: record_escalations(service, records),
    ).run(runtime)


async def reopen_case(service: CaseService, event: CaseReopened) -> None:
    """A case the hotline reopened (a dissatisfied callback) is routed again."""
    if await service.store.get(event.case_id) is None:
        log.warning("reopened case unknown to the router; skipped", case_id=event.case_id)
        return
    await service.update(
        event.case_id,
        lambda case: reopen(
            case,
            service.catalogue,
            event_id=str(event.event_id),
            actor=f"hotline:{event.operator_id}",
            reason=event.reason,
            now=utcnow(),
        ),
    )
    log.info("case reopened", case_id=event.case_id)


def build_subscribers(runtime: Runtime[CaseService]) -> KafkaRouter:
    settings = runtime.settings
    router = KafkaRouter()

    # A group of its own: sharing the intake's group with another subscription made every start (and every
    # return of the broker) a chain of rebalances in which the leader could assign the intake nothing.
    @router.subscriber(
        settings.topic(CASE_EVENTS_TOPIC),
        group_id=f"{settings.consumer_group}.case-events",
        auto_offset_reset="earliest",
        ack_policy=SUBSCRIBER_ACK_POLICY,
        decoder=raw_bodies,
    )
    async def on_hotline_case_event(body: bytes | None) -> None:
        # A record that is not a valid case event (or of an unknown type) raises: the delivery policy
        # dead-letters it.
        match read_event(CASE_EVENTS_TOPIC, body):
            case CaseReopened() as event:
                await reopen_case(runtime.service, event)
            case _:
                pass  # the router acts only on reopened cases

    return router
