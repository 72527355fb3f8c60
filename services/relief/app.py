"""Relief service wiring: settings, broker, store, routes, lifespan, the batch intake consumer (the
outbox sweeper and claims pruner come with every service: `common.app`)."""

from __future__ import annotations

from datetime import timedelta
from importlib import resources
from pathlib import Path

import structlog
from fastapi import FastAPI

from common.app import Runtime, create_service_app
from services.relief import api, care, care_api, desk_api, discovery, handlers
from services.relief.domain.parameters import RulesBook, load_rules
from services.relief.domain.standards import StandardsBook, load_standards
from services.relief.service import Relief
from services.relief.settings import Settings
from services.relief.store import ReliefStore

log = structlog.get_logger("relief.app")


def load_standards_book(settings: Settings) -> StandardsBook:
    """Read and validate the dibao standards; an invalid file stops the service from starting."""
    if settings.standards_path:
        text = Path(settings.standards_path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.relief.data").joinpath("dibao_standards.yaml").read_text(encoding="utf-8")
    parsed, book = load_standards(text)
    if parsed.example:
        log.warning(
            "dibao standards are EXAMPLE figures: replace them with the official standards",
            path=settings.standards_path or "services/relief/data/dibao_standards.yaml",
        )
    return book


def load_rules_book(settings: Settings) -> RulesBook:
    """Read and validate the relief rules and their dated parameters; an invalid file stops the service."""
    if settings.rules_path:
        text = Path(settings.rules_path).read_text(encoding="utf-8")
    else:
        text = resources.files("services.relief.data").joinpath("relief_rules.yaml").read_text(encoding="utf-8")
    _, rules = load_rules(text)
    if settings.major_second_approval_above_yuan is not None:
        log.warning(
            "P5.2c four-eyes threshold set by RELIEF_MAJOR_SECOND_APPROVAL_ABOVE_YUAN, not by the rule parameters",
            threshold=str(settings.major_second_approval_above_yuan),
        )
    return rules


async def startup(runtime: Runtime[Relief]) -> Relief:
    settings = runtime.settings
    if not isinstance(settings, Settings):
        raise TypeError("relief starts with its own settings (services.relief.settings.Settings)")
    book = load_standards_book(settings)
    rules = load_rules_book(settings)
    store = ReliefStore(
        runtime.db,
        archive_after=timedelta(seconds=settings.archive_after_s),
        dated_data_ttl_s=settings.dated_data_cache_s,
    )
    await store.ensure_indexes()
    relief = Relief(
        store=store,
        book=book,
        rules=rules,
        broker=runtime.broker,
        topic_namespace=settings.topic_namespace,
        four_eyes_above=settings.major_second_approval_above_yuan,
        part_month_policy=settings.part_month_policy,
        id_hash_salt=settings.id_hash_salt.get_secret_value(),
        run_batch_size=settings.run_batch_size,
    )
    # The entitlements' outboxes a failed publish (Kafka down) or a crash left are swept by the common
    # outbox sweeper (cases carry no events: nothing to sweep); both are archived by the common archiver.
    runtime.aggregates += [relief.entitlements, relief.cases]
    relief.care = care.CareRegister(
        store,
        care.load_schedule(),
        clock=lambda: relief.clock(),
        broker=runtime.broker,
        topic_namespace=settings.topic_namespace,
    )
    relief.care.discovery = discovery.Discovery(
        store, discovery.load_rules(), clock=lambda: relief.clock(), publish=relief.care.publisher
    )
    runtime.aggregates += [relief.care.entries, relief.care.discovery.proposals]
    return relief


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(
        settings or Settings(),
        title="Relief / 临时救助",
        description="Emergency temporary assistance at the place of hardship, approvals and a payment ledger.",
        subscribers=handlers.build_subscribers,
        routers=[api.router, desk_api.router, care_api.router, api.page],
        startup=startup,
        background=[handlers.intake_consumer, care.care_sweeper, handlers.registry_terms_backfill],
    )
