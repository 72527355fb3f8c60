"""Router service wiring: settings, catalogue, broker, store, routes, lifespan."""

from __future__ import annotations

import structlog
from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.router import api, api_details, handlers
from services.router.cases import CaseService
from services.router.domain.catalogue import DispatchCatalogue, load_catalogue
from services.router.intake import run_intake
from services.router.settings import DEV_LOOKUP_PEPPER, Settings
from services.router.store import RouterStore

log = structlog.get_logger("router.app")


def catalogue_of(settings: Settings) -> DispatchCatalogue:
    return load_catalogue(settings.catalogue_path or None)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    catalogue = catalogue_of(settings)  # a bad catalogue stops start-up here, naming the rule

    async def startup(runtime: Runtime[CaseService]) -> CaseService:
        if runtime.broker is None:  # made for every service built with Kafka, as the router is
            raise RuntimeError("the router needs its Kafka broker")
        if settings.environment == "production" and settings.lookup_pepper.get_secret_value() == DEV_LOOKUP_PEPPER:
            log.warning("ROUTER_LOOKUP_PEPPER is the development default: set a secret of this deployment's own")
        store = RouterStore(runtime.db, batch_timeout_s=settings.batch_timeout_s)
        await store.ensure_indexes()
        service = CaseService(store=store, broker=runtime.broker, settings=settings, catalogue=catalogue)
        runtime.aggregates.append(service.cases)
        return service

    return create_service_app(
        settings,
        title="Router / 一门受理 协同办理",
        description="Dispatch catalogue, department queues, sign-for, returns, co-handling, coordination.",
        subscribers=handlers.build_subscribers,
        routers=[api.pages, api.router, api.coordinator, api_details.router],
        startup=startup,
        background=[run_intake, handlers.desk_consumer, handlers.escalation_consumer],
    )
