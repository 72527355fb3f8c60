"""End to end: a call taken at the hotline reaches the right department's desk in the router, which signs
for it, returns it twice, and the district coordinator settles the arbitration (separate processes)."""

from __future__ import annotations

import contextlib
import time
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from common.auth import issue_token
from common.settings import ServiceSettings
from contracts.events import HELP_REQUESTED_TOPIC
from contracts.events.hotline import Caller, HelpRequested, Place
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

TOKENS = ServiceSettings(service_name="e2e")


def bearer(role: str, department: str | None = None, district: str = "500104", sub: str | None = None) -> dict:
    token = issue_token(TOKENS, sub=sub or f"{role}-{department}", role=role, department=department, district=district)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def services(kafka_bootstrap: str, mongodb_url: str, tmp_path):
    # The topics are the real shared ones: the router starts at their end ("latest"), so requests other
    # runs left there (whose case numbers a fresh hotline database reuses) are not its business.
    stack = ServiceSet(
        kafka_bootstrap,
        mongodb_url,
        ("hotline", "router"),
        tmp_path,
        extra_env={
            "ROUTER_DESK_DEPARTMENTS": '["market_regulation", "civil_affairs", "commerce"]',
            "ROUTER_INTAKE_OFFSET_RESET": "latest",
        },
    )
    with stack:
        yield stack


async def router_is_consuming(kafka_bootstrap: str, router: str) -> None:
    """Publish probe requests until the router dispatches one: its intake then has its partitions."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            probe = f"CQ-{datetime.now(UTC):%Y%m%d}-9{uuid.uuid4().int % 10**5:05d}"
            request = HelpRequested(
                case_id=probe,
                received_at=datetime.now(UTC),
                operator_id="e2e-probe",
                caller=Caller(name="探针", phone="13000000000"),
                place=Place(district="500104"),
                needs=("other",),
                description="e2e probe",
            )
            await producer.send_and_wait(HELP_REQUESTED_TOPIC, request.model_dump_json().encode(), key=probe.encode())

            async def dispatched(case_id: str = probe) -> bool:
                async with httpx.AsyncClient() as client:
                    seen = await client.get(f"{router}/api/v1/cases/{case_id}", headers=bearer("coordinator"))
                return seen.status_code == 200

            with contextlib.suppress(AssertionError):  # not yet assigned when the probe went out: try again
                await eventually(dispatched, timeout=4, what="the probe")
                return
        raise AssertionError("the router never consumed a probe request")
    finally:
        await producer.stop()


async def wait_for_task(router: str, department: str, case_id: str) -> dict:
    async def probe() -> dict | None:
        async with httpx.AsyncClient() as client:
            rows = (await client.get(f"{router}/api/v1/queue", headers=bearer("dept_worker", department))).json()
        return next((r for r in rows if r["case_id"] == case_id and r["role"] == "lead"), None)

    return await eventually(probe, timeout=30, what=f"{case_id} in {department}'s queue")


async def test_call_is_routed_returned_twice_and_arbitrated_by_the_coordinator(
    services: ServiceSet, kafka_bootstrap: str
) -> None:
    await router_is_consuming(kafka_bootstrap, services["router"].url)
    call = {
        "caller": {"name": "赵六", "phone": "13712345678"},
        "place": {"district": "500104", "address": "大渡口区某菜市场"},
        "needs": ["price_gouging"],
        "description": "猪肉摊位哄抬价格",
        "attributes": {"outlet_name": "某猪肉摊"},
    }
    posted = httpx.post(
        f"{services['hotline'].url}/api/v1/help-requests",
        json=call,
        headers=bearer("operator", district="500104", sub="op-9"),
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    case_id = posted.json()["case_id"]
    router = services["router"].url

    task = await wait_for_task(router, "market_regulation", case_id)  # P1.2, in the place of hardship
    signed = httpx.post(
        f"{router}/api/v1/tasks/{task['task_id']}/sign-for",
        headers=bearer("dept_worker", "market_regulation"),
        timeout=10,
    )
    assert signed.status_code == 200 and signed.json()["status"] == "signed_for"
    returned = httpx.post(
        f"{router}/api/v1/tasks/{task['task_id']}/return",
        headers=bearer("dept_worker", "market_regulation"),
        timeout=10,
        json={"reason": "not_our_responsibility", "note": "属供应问题"},
    )
    assert returned.json()["next_step"] == "redispatched"
    task = await wait_for_task(router, "civil_affairs", case_id)
    returned = httpx.post(
        f"{router}/api/v1/tasks/{task['task_id']}/return",
        headers=bearer("dept_worker", "civil_affairs"),
        timeout=10,
        json={"reason": "not_our_responsibility", "note": "非民政职责"},
    )
    assert returned.json()["next_step"] == "arbitration"

    coordinator = bearer("coordinator", sub="co-ddk")
    settled = httpx.post(
        f"{router}/api/v1/coordinator/cases/{case_id}/arbitration",
        headers=coordinator,
        json={"department": "commerce", "reason": "米袋子菜篮子归商务"},
        timeout=10,
    )
    assert settled.status_code == 200, settled.text
    await wait_for_task(router, "commerce", case_id)
    history = httpx.get(f"{router}/api/v1/cases/{case_id}", headers=coordinator, timeout=10).json()["history"]
    assert [(h["action"], h["actor"]) for h in history][-2:] == [
        ("arbitration_requested", "router"),
        ("arbitration_settled", "co-ddk"),
    ]
