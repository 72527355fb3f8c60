"""Hotline service wiring: settings, broker, store, routes, lifespan."""

from __future__ import annotations

from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.hotline import api, handlers
from services.hotline.settings import Settings
from services.hotline.store import HotlineStore


async def startup(runtime: Runtime) -> HotlineStore:
    store = HotlineStore(runtime.db)
    await store.ensure_indexes()
    return store


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Hotline intake / 热线受理",
        subscribers=handlers.build_subscribers,
        routers=[api.router],
        startup=startup,
        background=[handlers.outbox_relay],
    )
