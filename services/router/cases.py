"""The router's use cases: apply a domain change to a case through the shared write path
(`common.aggregates`: read, pure domain function, claim the next version, write the case with its
outbox, publish, clear the outbox; the sweeper publishes what a crash left, consumers dedupe on event id).

New cases come from the intake in batches (`dispatch_requests`): inserted in one `insert_many` each with
the events they were first dispatched with, then published; the Kafka offset is committed only after
that, so a crash in between redelivers the requests and the stored events are published again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

import structlog
from faststream.kafka import KafkaBroker

from common.aggregates import Aggregates, Codec
from common.kafka import BatchProducer, event_record, publish_event
from contracts.events import CASE_LIFECYCLE_TOPIC, department_queue_topic, topic_events, utcnow
from contracts.events.base import Event
from contracts.events.hotline import HelpRequested
from services.router.domain.case import Case
from services.router.domain.catalogue import DispatchCatalogue
from services.router.domain.coordination import FINAL
from services.router.domain.details import CaseDetails, MaskedContact, lookup_keys
from services.router.domain.dispatching import open_case
from services.router.domain.errors import case_not_found
from services.router.domain.routing import RoutingFacts, decide
from services.router.settings import Settings
from services.router.store import RouterStore

log = structlog.get_logger("router.cases")
T = TypeVar("T")


@dataclass
class BatchOutcome:
    created: int = 0
    conflicts: dict[str, str] = field(default_factory=dict)  # request event id -> why it was refused


@dataclass
class CaseService:
    store: RouterStore
    broker: KafkaBroker
    settings: Settings
    catalogue: DispatchCatalogue
    cases: Aggregates[Case] = field(init=False)

    def __post_init__(self) -> None:
        self.cases = Aggregates(
            self.store.cases,
            self.store.claims,
            Codec(Case.from_document, Case.to_document),
            self._publish_outboxes,
            archive=self.store.archive,
            archive_after=timedelta(seconds=self.settings.archive_after_s),
            finished={"status": {"$in": sorted(FINAL)}},  # resolved or merged
        )
        self.store.may_be_archived = self.cases.may_be_archived  # reads by id follow the write path's age

    @property
    def max_returns(self) -> int:
        return self.settings.max_returns or self.catalogue.max_returns

    @staticmethod
    def _contract_topic(entry: dict[str, Any]) -> str:
        """The contract topic of an outbox entry: its department's queue, or the case lifecycle."""
        if entry["queue"] == "department":
            return department_queue_topic(entry["department"])
        return CASE_LIFECYCLE_TOPIC

    def _event(self, entry: dict[str, Any]) -> tuple[str, Event]:
        topic = self._contract_topic(entry)
        event: Event = topic_events(topic).validate_python(entry["body"])
        return self.settings.topic(topic), event

    async def publish(self, entries: list[dict[str, Any]]) -> None:
        """Publish outbox entries: in order per case and topic, everything else concurrently."""
        streams: dict[tuple[str, str], list[Event]] = {}
        for entry in entries:
            topic, event = self._event(entry)
            streams.setdefault((topic, event.case_id), []).append(event)

        async def in_order(topic: str, events: list[Event]) -> None:
            for event in events:
                await publish_event(self.broker, event, topic=topic)

        await asyncio.gather(*(in_order(topic, events) for (topic, _), events in streams.items()))

    async def _publish_outboxes(self, outboxes: Sequence[tuple[str, list[dict[str, Any]]]]) -> None:
        await self.publish([entry for _, entries in outboxes for entry in entries])

    async def update(self, case_id: str, change: Callable[[Case], T]) -> tuple[Case, T]:
        """Apply `change` (a pure domain function that mutates the case and returns a result) through the
        shared write path; a change returning False that queued no event writes nothing."""
        seen: dict[str, Any] = {}

        def apply(current: Case | None) -> Case | None:
            if current is None:
                raise case_not_found(case_id)
            queued = len(current.outbox)
            seen["case"] = current.model_copy(deep=True)
            seen["result"] = change(current)
            if seen["result"] is False and len(current.outbox) == queued:
                return None  # nothing to do (a duplicate, or already in that state)
            return current

        written = await self.cases.change(case_id, apply)
        return (written.value if written is not None else seen["case"]), seen["result"]

    async def update_many(self, changes: Mapping[str, Sequence[Callable[[Case], object]]]) -> dict[str, Exception]:
        """Apply each case's changes (pure domain functions, as for `update`) in one pass of the shared write
        path; cases this router does not know are skipped. Returns the cases whose change raised."""

        def apply_all(steps: Sequence[Callable[[Case], object]]) -> Callable[[Case | None], Case | None]:
            def apply(current: Case | None) -> Case | None:
                if current is None:
                    return None
                queued = len(current.outbox)
                results = [step(current) for step in steps]
                if all(r is False for r in results) and len(current.outbox) == queued:
                    return None
                return current

            return apply

        outcome = await self.cases.change_many({case_id: apply_all(steps) for case_id, steps in changes.items()})
        return outcome.failed

    async def publish_with(self, producer: BatchProducer, entries: list[dict[str, Any]]) -> None:
        """Publish outbox entries straight through an aiokafka producer (the intake's hot path), one batch per
        topic partition, in order (so one case's events keep their order), then await every acknowledgement.
        Same records as `common.kafka.publish_event` (`event_record`), without re-validating the bodies."""
        records = []
        for entry in entries:
            records.append((self.settings.topic(self._contract_topic(entry)), *event_record(entry["body"])))
        # Bounded like the store write: a stuck acknowledgement fails the batch, which is then redelivered.
        await producer.deliver(records, timeout=self.settings.batch_timeout_s)

    async def dispatch_requests(self, requests: list[HelpRequested], *, producer: BatchProducer) -> BatchOutcome:
        """A batch of help requests: route each, store the new cases, publish every event, wait for the acks.

        The batch is worked as a pipeline of chunks (`intake_chunk_size` cases): while one chunk's cases are
        written to the store (one `insert_many` at a time), the next chunk is routed and the previous one's
        events are published, so the router's CPU, the store and the broker work at once. One case's
        requests are always in one chunk. A redelivered request republishes the events recorded with its
        case; a *different* request carrying a case id already taken is refused (returned in `conflicts`,
        never dispatched)."""
        now = utcnow()
        outcome = BatchOutcome()
        by_case: dict[str, list[HelpRequested]] = {}
        for request in requests:
            by_case.setdefault(request.case_id, []).append(request)
        case_ids, size = list(by_case), self.settings.intake_chunk_size
        chunks = [
            [r for case_id in case_ids[i : i + size] for r in by_case[case_id]] for i in range(0, len(case_ids), size)
        ]
        try:
            async with asyncio.TaskGroup() as group:
                for chunk in chunks:
                    group.create_task(self._dispatch_chunk(chunk, producer, outcome, now))
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None  # the first failure decides (retry, redeliver, dead-letter)
        return outcome

    async def _dispatch_chunk(
        self, requests: list[HelpRequested], producer: BatchProducer, outcome: BatchOutcome, now: datetime
    ) -> None:
        cases: dict[str, tuple[Case, list[dict[str, Any]]]] = {}
        details: dict[str, tuple[Case, CaseDetails, tuple[str, ...]]] = {}
        pepper = self.settings.lookup_pepper_bytes
        for request in requests:
            event_id = str(request.event_id)
            if request.case_id in cases:
                if cases[request.case_id][0].request_event_id != event_id:
                    outcome.conflicts[event_id] = f"case id {request.case_id} is used by two requests in one batch"
                continue  # the same request twice in one batch
            facts = RoutingFacts.of(request)
            case = open_case(
                request.case_id,
                facts,
                decide(self.catalogue, facts),
                self.catalogue,
                now=now,
                correlation_id=request.correlation_id or event_id,
                summary=request.description[:200],
                request_event_id=event_id,
            )
            # Who and where: masked in the case, in clear in its details record (P2.2, P2.3).
            clear = CaseDetails.of(request)
            case.contact = MaskedContact.of(clear)
            entries, case.outbox = case.outbox, []
            cases[request.case_id] = (case, entries)
            details[request.case_id] = (case, clear, lookup_keys(request.caller.phone, request.caller.id_card, pepper))
        # A case is archived only once closed and left alone for `archive_after_s`, so only a request received
        # longer ago than that (history replayed) can find its case there rather than in the working set.
        archived = await self.store.archived(list(cases))
        inserted = await self.store.insert_cases(
            [(case, entries) for case_id, (case, entries) in cases.items() if case_id not in archived],
            remember=self.cases.remember,
        )
        inserted.update(dict.fromkeys(archived, False))
        to_publish: list[dict[str, Any]] = []
        accepted: list[tuple[Case, CaseDetails, tuple[str, ...]]] = []
        for case_id, (case, entries) in cases.items():
            if inserted[case_id]:
                outcome.created += 1
                to_publish.extend(entries)
                accepted.append(details[case_id])
                continue
            stored_request, stored_entries = await self.store.first_dispatch(case_id)
            if stored_request not in (None, case.request_event_id):
                outcome.conflicts[str(case.request_event_id)] = (
                    f"case id {case_id} already belongs to request {stored_request}"
                )
            else:
                to_publish.extend(stored_entries)
                if case_id not in archived:  # a redelivery: its details record may be what a crash left out
                    accepted.append(details[case_id])
        # The details are written while the events are published; the offsets wait for both.
        await asyncio.gather(self.publish_with(producer, to_publish), self.store.insert_details(accepted))
