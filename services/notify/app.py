"""Notify service wiring: settings, broker, store, routes, lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.notify import api, handlers
from services.notify.settings import Settings
from services.notify.store import NotifyStore


async def startup(runtime: Runtime) -> NotifyStore:
    store = NotifyStore(runtime.db)
    await store.ensure_indexes()
    return store


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Notify / 时限督办",
        subscribers=handlers.build_subscribers,
        routers=[api.router],
        startup=startup,
    )
