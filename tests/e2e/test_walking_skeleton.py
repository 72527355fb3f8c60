"""End to end: a help request posted to the hotline shows up, dispatched and timed, in notify."""

from __future__ import annotations

import time

import httpx
import pytest

from common.auth import issue_token
from common.settings import ServiceSettings
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e

TOKENS = ServiceSettings(service_name="e2e")


@pytest.fixture
def services(kafka_bootstrap: str, mongodb_url: str, tmp_path):
    stack = ServiceSet(
        kafka_bootstrap, mongodb_url, ("hotline", "router", "relief", "notify"), tmp_path, isolated_topics=True
    )
    with stack:
        yield stack


def test_help_request_flows_from_hotline_through_router_to_notify(services: ServiceSet) -> None:
    operator = issue_token(TOKENS, sub="op-7", role="operator", district="500103")
    coordinator = issue_token(TOKENS, sub="co-1", role="coordinator", district="500103")
    call = {
        "caller": {"name": "李四", "phone": "13912345678"},
        "place": {"district": "500103", "address": "解放碑步行街地下通道"},
        "needs": ["homeless_cold"],
        "urgency": "emergency",
        "description": "一名老人在地下通道露宿，天气寒冷",
    }
    posted = httpx.post(
        f"{services['hotline'].url}/api/v1/help-requests",
        json=call,
        headers={"Authorization": f"Bearer {operator}"},
        timeout=10,
    )
    assert posted.status_code == 201, posted.text
    case_id = posted.json()["case_id"]
    assert case_id.startswith("CQ-")

    # Notify hears of the call from the hotline first, then of its dispatch from the router.
    started = time.monotonic()
    found = None
    while time.monotonic() - started < 30 and not (found and found["department"]):
        cases = httpx.get(
            f"{services['notify'].url}/api/v1/cases", headers={"Authorization": f"Bearer {coordinator}"}, timeout=10
        )
        assert cases.status_code == 200, cases.text
        found = next((c for c in cases.json() if c["case_id"] == case_id), None)
        time.sleep(0.1)
    assert found is not None, services["notify"].log_tail()
    print(f"help request visible as dispatched in notify after {time.monotonic() - started:.2f} s")
    assert found["district"] == "500103"
    assert found["due_at"] is not None
    assert found["department"] == "civil_affairs"
    assert found["sla_class"] == "emergency"


def test_notify_refuses_requests_without_a_token(services: ServiceSet) -> None:
    response = httpx.get(f"{services['notify'].url}/api/v1/cases", timeout=10)
    assert response.status_code == 401
    assert response.json()["detail"]["message_zh"]
