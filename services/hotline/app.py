"""Hotline service wiring: settings, broker, store, outbox, routes, lifespan."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.hotline import api, handlers, open311, search_api
from services.hotline.domain import triage_rules
from services.hotline.domain.repeats import repeat_rules
from services.hotline.intake import CaseNumbers, Hotline
from services.hotline.outbox import Publisher
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore, Outbox


async def startup(runtime: Runtime[Hotline]) -> Hotline:
    settings = runtime.settings
    if not isinstance(settings, Settings) or runtime.broker is None:
        raise RuntimeError("the hotline runs with its own settings and a Kafka broker")
    triage_rules()  # rules as data: validated at start-up, not on the first emergency call
    repeat_rules()  # the repeated-calls discovery rule (P2.3), likewise
    store = HotlineStore(
        runtime.db,
        pepper=settings.lookup_pepper.get_secret_value(),
        archive_after=timedelta(seconds=settings.archive_after_s),
    )
    runtime.aggregates.append(store.records)  # archived by the common archiver
    outbox = Outbox(runtime.db)
    await store.ensure_indexes()
    await outbox.ensure_indexes()
    publisher = Publisher(outbox, runtime.broker, settings, kafka_connected=runtime.kafka_connected)
    return Hotline(
        store=store,
        outbox=outbox,
        publisher=publisher,
        settings=settings,
        case_numbers=CaseNumbers(store),
        slots=asyncio.Semaphore(settings.intake_concurrency),
    )


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Hotline intake / 热线受理",
        description="Operators take calls and get a case number at once; Open311 GeoReport v2 under /open311/v2/.",
        subscribers=handlers.build_subscribers,
        routers=[api.page, search_api.router, api.router, open311.router],
        startup=startup,
        background=[
            handlers.outbox_relay,
            handlers.status_consumer,
            handlers.caller_feed,
            handlers.outreach_consumer,
            handlers.repeats_consumer,
            handlers.search_backfill,
        ],
    )
