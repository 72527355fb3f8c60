"""Router service wiring: settings, broker, store, routes, lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.router import api, handlers
from services.router.settings import Settings
from services.router.store import RouterStore


async def startup(runtime: Runtime) -> RouterStore:
    store = RouterStore(runtime.db)
    await store.ensure_indexes()
    return store


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Router / 一门受理 协同办理",
        subscribers=handlers.build_subscribers,
        routers=[api.router],
        startup=startup,
    )
