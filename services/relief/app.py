"""Relief service wiring: settings, broker, store, routes, lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.relief import api, handlers
from services.relief.settings import Settings
from services.relief.store import ReliefStore


async def startup(runtime: Runtime) -> ReliefStore:
    store = ReliefStore(runtime.db)
    await store.ensure_indexes()
    return store


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Relief / 临时救助",
        subscribers=handlers.build_subscribers,
        routers=[api.router],
        startup=startup,
    )
