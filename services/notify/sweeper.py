"""Background loops: the SLA sweeper (warnings, breaches, escalations) and the outbox relay.

Each due timer is handled at least once: publish its SLA event (its id derives from the timer id, so a
re-fire after a crash carries the same event id), record it, queue its alerts (natural keys), then delete
the timer. A killed process leaves the timer in the store; the next sweep after a restart fires it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog

from common.app import Runtime
from common.kafka import publish_event
from contracts.events.notify import SlaBreached, SlaEscalated, SlaWarningRaised
from services.notify.documents import SlaEventRecord
from services.notify.domain import texts
from services.notify.outbox import Channel, build_channels
from services.notify.timers import DueTimer, by_case

if TYPE_CHECKING:
    from services.notify.clockwork import Notify

log = structlog.get_logger("notify.sweeper")
EVENT_NAMESPACE = uuid.UUID("5b0f3f55-8d0e-4f1e-9a43-2f1d7c1a9e10")
REAP_EVERY = 60


def sla_event(timer: DueTimer, now: datetime) -> SlaWarningRaised | SlaBreached | SlaEscalated:
    """The contract event of a fired timer; the same timer always gives the same event id."""
    p = timer.payload
    common: dict[str, Any] = {
        "event_id": uuid.uuid5(EVENT_NAMESPACE, timer.id),
        "occurred_at": now,
        "case_id": p["case_id"],
        "clock": p["clock"],
        "target": p["target"],
        "department": p.get("department"),
        "district": p["district"],
        "due_at": p["due_at"],
        "sla_class": p["sla_class"],
        "rule_id": p.get("rule_id"),
        "provisions": tuple(p.get("provisions", ())),
        "clock_key": p.get("clock_key"),
    }
    if p["stage"] == "warning":
        return SlaWarningRaised(**common, share_elapsed=p["share_elapsed"])
    if p["stage"] == "breach":
        return SlaBreached(**common)
    recipient = texts.sla_alerts(timer.id, p, UTC)[0].recipient
    return SlaEscalated(**common, tier=p["tier"], recipient=recipient)


async def fire(runtime: Runtime[Notify], timer: DueTimer, now: datetime, topic: str | None = None) -> None:
    notify = runtime.service
    if runtime.broker is None:
        raise RuntimeError("the SLA sweeper publishes SLA events: notify runs with a broker")
    event = sla_event(timer, now)
    await publish_event(runtime.broker, event, topic=topic or runtime.settings.topic(event.TOPIC))
    await notify.store.record_sla_event(
        SlaEventRecord(
            event_id=str(event.event_id),
            case_id=event.case_id,
            type=event.type,
            target=event.target,
            clock_key=event.clock_key,
            department=event.department,
            district=event.district,
            due_at=event.due_at,
            tier=getattr(event, "tier", None),
            rule_id=event.rule_id,
            fired_at=now,
            timer_due_at=timer.due_at,
        )
    )
    for alert in texts.sla_alerts(timer.id, timer.payload, notify.policy.tz):
        await notify.outbox.enqueue(alert, now)
    await notify.store.sla_timers.done(timer)
    log.info(
        "sla event",
        type=event.type,
        case_id=event.case_id,
        target=event.target,
        clock=event.clock_key,
        tier=getattr(event, "tier", None),
        late_ms=round((now - timer.due_at).total_seconds() * 1000),
    )


async def sweep_once(runtime: Runtime[Notify], now: datetime | None = None, topic: str | None = None) -> int:
    """Fire every timer due by `now` (up to one batch); returns how many were due.

    Cases are fired concurrently (publishing is mostly waiting for the broker's acknowledgement); the
    timers of one case in order, so its warning is published before its breach."""
    now = now or datetime.now(UTC)
    due = await runtime.service.store.sla_timers.due(now, runtime.service.settings.sweep_batch)
    await by_case(due, lambda timer: timer.payload["case_id"], lambda timer: fire(runtime, timer, now, topic))
    return len(due)


async def sla_sweeper(runtime: Runtime[Notify]) -> None:
    """Fire due SLA timers for the life of the service; a failure is logged and retried next tick."""
    settings = runtime.service.settings
    ticks = 0
    while True:
        await runtime.kafka_connected.wait()
        fired = 0
        try:
            fired = await sweep_once(runtime)
            ticks += 1
            if ticks % REAP_EVERY == 0:
                await runtime.service.store.sla_timers.reap(datetime.now(UTC))
        except Exception as exc:  # noqa: BLE001 - the timers stay in the store; next tick retries
            log.warning("sla sweep failed; retrying", error=repr(exc))
        if fired < settings.sweep_batch:
            await asyncio.sleep(settings.sweep_interval_s)


async def deliver_once(runtime: Runtime[Notify], channels: dict[str, Channel], now: datetime | None = None) -> int:
    """Run every notification attempt due by `now` (up to one batch); returns how many were due.

    Like the SLA timers: cases at the same time (an attempt is mostly waiting for the store and the
    provider; one after another, a surge's texts fell minutes behind its calls), the attempts of one case
    in order, so a caller's texts keep theirs."""
    now = now or datetime.now(UTC)
    due = await runtime.service.store.outbox_timers.due(now, runtime.service.settings.sweep_batch)
    await runtime.service.outbox.deliver_many(due, channels)
    return len(due)


async def outbox_relay(runtime: Runtime[Notify]) -> None:
    """Deliver due notification attempts through their channels, for the life of the service."""
    settings = runtime.service.settings
    ticks = 0
    async with httpx.AsyncClient(timeout=settings.delivery_timeout_s) as client:
        channels = build_channels(settings, client)
        while True:
            handled = 0
            try:
                handled = await deliver_once(runtime, channels)
                ticks += 1
                if ticks % REAP_EVERY == 0:
                    await runtime.service.store.outbox_timers.reap(datetime.now(UTC))
            except Exception as exc:  # noqa: BLE001 - attempts stay in the store; next tick retries
                log.warning("outbox relay failed; retrying", error=repr(exc))
            if handled < settings.sweep_batch:
                await asyncio.sleep(settings.sweep_interval_s)
