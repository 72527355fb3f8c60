"""Notify's Kafka consumer (thin): a batch of router, hotline and relief records at a time, read into
contract events (`contracts.events.read_event`) and handed to the clockwork in one pass of the write path.

An event type this version does not know (the router may add some) is logged and skipped instead of
dead-lettered; a record that is not a valid event of its topic is returned to be dead-lettered, and the
rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import structlog

from common.app import Runtime
from common.batches import BatchConsumer, Rejected
from contracts.events import BAD_RECORD, Event, read_event
from contracts.events.care import CARE_EVENTS_TOPIC, OutreachProposed, VisitMissed
from contracts.events.hotline import CASE_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, HelpRequested
from contracts.events.relief import GRANT_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC, CaseDispatched, EscalationAcknowledged
from services.notify.domain import case as case_rules
from services.notify.domain import texts
from services.notify.domain.case import Escalation

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord

    from services.notify.clockwork import Notify, StateChange

log = structlog.get_logger("notify.handlers")

# The contract topics notify follows (each under the deployment's namespace, `settings.topic`).
TOPICS = (CASE_LIFECYCLE_TOPIC, CASE_EVENTS_TOPIC, GRANT_EVENTS_TOPIC, HELP_REQUESTED_TOPIC, CARE_EVENTS_TOPIC)


def _step(event: Event, notify: Notify, escalation: Escalation | None = None) -> StateChange:
    return lambda state: case_rules.apply(state, event, notify.policy, escalation=escalation)


async def _escalations(notify: Notify, events: list[Event]) -> dict[str, Escalation]:
    """The escalations answered in a batch, as notify recorded them when they fired (one read)."""
    ids = [e.escalation_event_id for e in events if isinstance(e, EscalationAcknowledged)]
    records = await notify.store.sla_events_by_id(ids)
    for missing in set(ids) - set(records):
        log.warning("an escalation was answered that notify did not record; its reminders are unknown", event=missing)
    return {
        i: Escalation(event_id=i, clock_key=r.clock_key, target=r.target, tier=r.tier, due_at=r.due_at)
        for i, r in records.items()
        if r.type == "sla.escalated"
    }


def _visit_missed(event: VisitMissed) -> list[texts.Notification]:
    """P2.2, P5.3: a visit due on the care register passed without a record: its worker and department."""
    return [
        replace(n, event_id=str(event.event_id))
        for n in texts.visit_missed(
            entry_id=event.entry_id,
            district=event.district,
            department=event.department,
            worker=event.worker,
            due_on=event.due_on.isoformat(),
            rule_id=event.rule_id,
            provisions=event.provisions,
        )
    ]


async def apply_records(runtime: Runtime[Notify], records: Sequence[ConsumerRecord]) -> Rejected:
    """Apply a batch of records: one write-path pass for all the cases they concern (events of one case
    in the order they came); records that are not valid events, or whose case refused them, come back
    to be dead-lettered."""
    notify = runtime.service
    contract_topic = {runtime.settings.topic(name): name for name in TOPICS}
    rejected: Rejected = []
    steps: list[tuple[str, str, StateChange]] = []
    records_of: dict[str, list[ConsumerRecord]] = {}
    phones: dict[str, str] = {}
    consents: dict[str, bool] = {}  # whether each caller agreed to texts (P6.2)
    # Cases whose call is in this batch: new, so not read first. The call comes first, but a batch of two
    # topics need not hold their records in that order (a lingering batch often holds a case's call and
    # its dispatch); a case there after all (a redelivery) is read and changed again by the write path.
    opened: set[str] = set()
    events: list[tuple[ConsumerRecord, Event]] = []
    alerts: list[texts.Notification] = []  # care register alerts: no case clock, straight to the outbox
    for record in records:
        try:
            event = read_event(contract_topic[record.topic], record.value)
        except BAD_RECORD as exc:
            rejected.append((record, exc))
            continue
        if isinstance(event, VisitMissed):
            alerts += _visit_missed(event)
            continue
        if isinstance(event, OutreachProposed):
            continue  # the hotline files it; notify follows the case it becomes
        events.append((record, event))
    if alerts:  # once per missed visit: the notification's natural key
        await notify.outbox.enqueue_many(alerts)
    answered = await _escalations(notify, [event for _, event in events])
    for record, event in events:
        if isinstance(event, HelpRequested):
            opened.add(event.case_id)
            # The phone is kept only to text the caller about this case; it is never logged or put in keys.
            phones[event.case_id] = event.caller.phone
            consents[event.case_id] = event.caller.consents_to_texts
        if isinstance(event, CaseDispatched):
            choice = notify.policy.choose(event.sla_class, event.occurred_at)
            if choice.fell_back:
                log.warning(
                    "unknown SLA class; the fallback class applies",
                    case_id=event.case_id,
                    requested=event.sla_class,
                    applied=choice.sla_class.name,
                    policy_version=choice.policy_version,
                )
        escalation = answered.get(event.escalation_event_id) if isinstance(event, EscalationAcknowledged) else None
        steps.append((event.case_id, str(event.event_id), _step(event, notify, escalation)))
        records_of.setdefault(event.case_id, []).append(record)
    await notify.store.remember_callers(phones, consents)
    failed = await notify.clockwork.record_many(steps, new=opened)
    for case_id, error in failed.items():
        log.error("case refused its events", case_id=case_id, error=repr(error))
        rejected += [(record, error) for record in records_of[case_id]]
    if steps:
        log.debug("case events applied", events=len(steps), cases=len(records_of), records=len(records))
    return rejected


async def case_events_consumer(runtime: Runtime[Notify]) -> None:
    """Background loop: every topic notify follows, a batch of records at a time, in one consumer group."""
    settings = runtime.service.settings
    await BatchConsumer(
        name="cases",
        topics=tuple(settings.topic(t) for t in TOPICS),
        group_id=settings.consumer_group,
        handler=lambda records: apply_records(runtime, records),
        max_records=settings.case_batch_size,
        linger_ms=settings.consumer_linger_ms,
        auto_offset_reset=settings.kafka_start_from,
    ).run(runtime)
