"""Help-request intake in batches: the router's hot path (consume → route → record → dispatch).

One `insert_many` per batch is what lets the router keep up with Kafka on FerretDB, where one insert
costs about as much as a whole batch. It is a `common.batches.BatchConsumer`, so the delivery rules are
the shared ones: a record that fails validation, or a different request reusing a case id, is
dead-lettered and the rest of the batch goes on; a store or broker failure is retried, then the batch
is redelivered; the offsets are committed only after every case is stored and its events acked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import structlog

from common.batches import BatchConsumer, Rejected, handle_with_policy
from common.consumer import DeliveryPolicy
from common.kafka import BatchProducer
from contracts.events import BAD_RECORD, HELP_REQUESTED_TOPIC, read_event
from contracts.events.hotline import HelpRequested
from services.router.cases import BatchOutcome

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aiokafka import ConsumerRecord

    from common.app import Runtime
    from services.router.cases import CaseService

log = structlog.get_logger("router.intake")

# Route, store and publish a batch of requests (`CaseService.dispatch_requests` with the consumer's producer).
Dispatch = Callable[[list[HelpRequested]], Awaitable[BatchOutcome]]


class CaseIdConflict(ValueError):
    """A different request carries a case id the router already dispatched: never dispatched twice."""


async def dispatch_batch(dispatch: Dispatch, records: Sequence[ConsumerRecord], created: list[int]) -> Rejected:
    """Dispatch a batch of help requests; the records to dead-letter are returned, new cases counted."""
    rejected: Rejected = []
    parsed: list[tuple[ConsumerRecord, HelpRequested]] = []
    for record in records:
        try:
            request = read_event(HELP_REQUESTED_TOPIC, record.value)
        except (*BAD_RECORD, ValueError) as exc:
            rejected.append((record, exc))
            continue
        if isinstance(request, HelpRequested):
            parsed.append((record, request))
    outcome = await dispatch([r for _, r in parsed])
    created.append(outcome.created)
    rejected += [
        (record, CaseIdConflict(reason))
        for record, request in parsed
        if (reason := outcome.conflicts.get(str(request.event_id))) is not None
    ]
    return rejected


async def handle_batch(dispatch: Dispatch, policy: DeliveryPolicy, records: tuple[ConsumerRecord, ...]) -> int:
    """Dispatch a batch under the delivery rules; returns how many new cases. Raises `NackMessage` to redeliver."""
    created: list[int] = []
    await handle_with_policy(policy, lambda batch: dispatch_batch(dispatch, batch, created), records)
    return sum(created)


async def run_intake(runtime: Runtime[CaseService]) -> None:
    """Background loop: `intake_consumers` batch consumers in the router's group, each with its own broker and
    producer, for the life of the service. Each owns whole partitions, so one case's requests stay in order,
    and one consumer's store write overlaps another's publishing."""
    service = runtime.service
    settings = service.settings

    def consumer(n: int) -> BatchConsumer:
        producer = BatchProducer(settings.kafka_bootstrap_servers, client_id=f"{settings.service_name}-dispatch-{n}")

        async def dispatch(records: Sequence[ConsumerRecord]) -> Rejected:
            created: list[int] = []
            rejected = await dispatch_batch(
                lambda requests: service.dispatch_requests(requests, producer=producer), records, created
            )
            log.debug("help requests dispatched", records=len(records), new_cases=sum(created))
            return rejected

        return BatchConsumer(
            name=f"intake-{n}",
            topics=(settings.help_requested_topic,),
            group_id=settings.consumer_group,
            handler=dispatch,
            max_records=settings.intake_batch_size,
            batch_timeout_ms=settings.intake_batch_timeout_ms,
            auto_offset_reset=settings.intake_offset_reset,
            resources=(producer,),
        )

    await asyncio.gather(*(consumer(n).run(runtime) for n in range(settings.intake_consumers)))
