"""Notify service wiring: settings, policy, broker, store, routes, background loops, lifespan."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.notify import api, api_workspace, calendars, handlers, sweeper
from services.notify.clockwork import Clockwork, Notify
from services.notify.domain.policy import load_policy
from services.notify.outbox import Outbox
from services.notify.settings import Settings
from services.notify.store import NotifyStore


async def startup(runtime: Runtime[Notify]) -> Notify:
    settings = runtime.settings
    if not isinstance(settings, Settings):  # create_app passes notify's own; a test runtime must too
        raise TypeError("notify starts with services.notify.settings.Settings")
    policy = load_policy(settings.sla_policy_path, warning_share=settings.warning_share)  # invalid: refuse to start
    store = NotifyStore(
        runtime.db, bucket_s=settings.timer_bucket_s, archive_after=timedelta(seconds=settings.archive_after_s)
    )
    await store.ensure_indexes()
    if policy.calendar is not None:  # the packaged holiday schedules plus the years an admin added
        await calendars.restore(store, policy.calendar)
    outbox = Outbox(store, settings)
    clockwork = Clockwork(store, policy, outbox, settings.caller_texts)
    runtime.aggregates.append(clockwork.cases)
    return Notify(store, policy, clockwork, outbox)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Notify / 时限督办",
        description="SLA clocks, warnings, escalations and the coordinators' view of overdue cases.",
        routers=[api.router, api_workspace.router, api.pages, api_workspace.files],
        startup=startup,
        background=[handlers.case_events_consumer, sweeper.sla_sweeper, sweeper.outbox_relay],
    )
