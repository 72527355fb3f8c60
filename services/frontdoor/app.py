"""Front door wiring: one address for people. Sign-in, accounts, and the four services' pages behind it."""

from __future__ import annotations

from datetime import timedelta

import httpx
import structlog
from fastapi import FastAPI

from common.app import Runtime, create_service_app, every
from services.frontdoor import api
from services.frontdoor.accounts import Accounts, now_utc
from services.frontdoor.dev_accounts import create_dev_accounts
from services.frontdoor.proxy import proxy_router
from services.frontdoor.sessions import FrontDoor
from services.frontdoor.settings import Settings
from services.frontdoor.store import FrontdoorStore

log = structlog.get_logger("frontdoor")


async def open_frontdoor(runtime: Runtime[FrontDoor], settings: Settings) -> FrontDoor:
    """The start-up hook's work: the account store (indexes, development accounts) and the proxy's client."""
    store = FrontdoorStore(runtime.db)
    await store.ensure_indexes()
    accounts = Accounts(store, settings)
    if settings.environment == "development" and settings.dev_accounts:
        await create_dev_accounts(accounts)
    # No pool limit of its own: a page's requests wait on the services, not on the front door.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.proxy_timeout_s, connect=5.0),
        # Idle connections are let go after 2 s, before the services' uvicorn closes them (after 5 s): a
        # request sent on a connection the service is closing fails with a ReadError ("unreachable").
        limits=httpx.Limits(max_connections=None, max_keepalive_connections=50, keepalive_expiry=2.0),
    )
    return FrontDoor(settings=settings, accounts=accounts, http=http)


async def shutdown(runtime: Runtime[FrontDoor]) -> None:
    await runtime.service.http.aclose()


async def pruner(runtime: Runtime[FrontDoor]) -> None:
    """Expired sessions and old sign-in attempts go, so the collections every sign-in reads stay small."""
    frontdoor = runtime.service
    settings = frontdoor.settings

    async def prune() -> None:
        now = now_utc()
        sessions = await frontdoor.accounts.store.prune_sessions(now=now)
        attempts = await frontdoor.accounts.store.prune_attempts(
            older_than=now - timedelta(seconds=settings.attempts_retention_s)
        )
        if sessions or attempts:
            log.info("expired sessions and old sign-in attempts pruned", sessions=sessions, attempts=attempts)

    await every(settings.prune_interval_s, prune, what="pruning sessions")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    async def startup(runtime: Runtime[FrontDoor]) -> FrontDoor:
        return await open_frontdoor(runtime, settings)

    return create_service_app(
        settings,
        title="Front door / 统一入口",
        description="Sign in with an account; each role's workspace; the services' pages and APIs under /<service>/.",
        routers=[api.auth, api.accounts_api, api.pages, proxy_router(list(settings.upstreams()))],
        startup=startup,
        shutdown=shutdown,
        background=[pruner],
        kafka=False,
    )
