"""Notify's test fixtures: the service's runtime over the real store, with FastStream's test broker."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI
from faststream.kafka import KafkaRouter, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from common.app import Runtime
from common.http_errors import install_error_handlers
from common.kafka import make_broker
from services.notify import api, api_workspace
from services.notify.app import startup
from services.notify.clockwork import Notify
from services.notify.handlers import TOPICS, apply_records
from services.notify.settings import Settings

DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "services" / "notify" / "data" / "sla_policy.yaml"


def fast_policy(
    tmp_path: Path,
    *,
    sign_for: str = "PT4S",
    resolution: str = "PT8S",
    escalation: tuple[str, str, str] = ("PT0S", "PT1S", "PT2S"),
) -> Path:
    """The packaged policy plus a class `test_fast` measured in seconds, for real-time tests. The other
    classes keep their real targets, so other tests' cases on the shared topics fire nothing soon."""
    data = yaml.safe_load(DEFAULT_POLICY.read_text(encoding="utf-8"))
    tiers = ("department_head", "district_coordinator", "city_coordinator")
    for version in data["versions"]:  # every version, so a clock started today finds the class too
        classes = version["classes"]
        fast = classes["test_fast"] = copy.deepcopy(classes["standard"])
        for target in fast["targets"].values():
            target["rule_id"] = target["rule_id"].replace("SLA-STANDARD", "SLA-TEST-FAST")
            target.pop("working_days", None)  # seconds, round the clock
        fast["targets"]["sign_for"]["within"] = sign_for
        fast["targets"]["first_contact"]["within"] = resolution
        fast["targets"]["resolution"]["within"] = resolution
        fast["escalation"] = [{"tier": t, "after_breach": d} for t, d in zip(tiers, escalation, strict=True)]
    path = tmp_path / "sla_policy.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def batch_handler_on_test_broker(rt: Runtime[Notify]) -> KafkaRouter:
    """Notify consumes in batches on a broker of its own (`handlers.case_events_consumer`); here each
    record published on the test broker goes to the same batch handler as a batch of one, and a record
    the handler rejects fails the publish."""
    router = KafkaRouter()

    @router.subscriber(*(rt.settings.topic(name) for name in TOPICS), group_id="notify")
    async def forward(_: object, message: KafkaMessage) -> None:
        if rejected := await apply_records(rt, [message.raw_message]):
            raise rejected[0][1]

    return router


@pytest.fixture
async def runtime(mongo_client, db_name: str, kafka_bootstrap: str) -> AsyncIterator[Runtime[Notify]]:
    """Notify's runtime on a fresh database, its subscribers on a TestKafkaBroker (no real Kafka)."""
    settings = Settings(
        mongodb_database=db_name,
        kafka_bootstrap_servers=kafka_bootstrap,
        environment="test",
        consumer_max_attempts=1,
        timer_bucket_s=60,
    )
    broker = make_broker(settings)
    rt: Runtime[Notify] = Runtime(settings=settings, broker=broker, mongo=mongo_client, db=mongo_client[db_name])
    rt.bind(await startup(rt))
    broker.include_router(batch_handler_on_test_broker(rt))
    async with TestKafkaBroker(broker):
        rt.kafka_connected.set()
        yield rt


@pytest.fixture
async def client(runtime: Runtime[Notify]) -> AsyncIterator[httpx.AsyncClient]:
    """Notify's API, workspace and pages over the fixture's runtime, with the service's error replies."""
    app = FastAPI()
    install_error_handlers(app)
    for router in (api.router, api_workspace.router, api.pages, api_workspace.files):
        app.include_router(router)
    app.state.settings = runtime.settings
    app.state.runtime = runtime
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://notify") as http:
        yield http
