"""The coordinator's one workspace (/notify/), in a real browser: the overdue list and the three rates,
a case a department returned (退单) counted and listed in the returned tab, and the coordinator
reassigning it to another department from there (the router's coordinator API, through the front door),
with the confirmation kept while the lists refresh on their own."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from common.kafka import event_record
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from tests.support.browser import Pages, api_token, sign_in
from tests.support.events import dispatched, new_case_id
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

LIST_WAIT_MS = 60_000  # a case travels hotline -> Kafka -> router -> notify; the page polls every few seconds


async def publish_overdue_dispatch(stack: ServiceSet, kafka_bootstrap: str) -> str:
    """A case dispatched two days ago to civil affairs and never signed for: overdue at notify."""
    case_id = new_case_id()
    event = dispatched(
        case_id, at=datetime.now(UTC) - timedelta(days=2), sla_class="standard", needs=("special_group_visit",)
    )
    key, value, headers = event_record(event.model_dump(mode="json"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(stack.namespace + CASE_LIFECYCLE_TOPIC, value, key=key, headers=headers)
    finally:
        await producer.stop()
    return case_id


async def returned_case(stack: ServiceSet) -> str:
    """A call taken by the operator, signed for and returned (退单) by the civil-affairs worker."""
    door = stack["frontdoor"].url
    call = {
        "caller": {"name": "王五", "phone": "13612345678"},
        "place": {"district": "500103", "address": "渝中区某小区"},
        "needs": ["special_group_visit"],
        "description": "独居老人多日未见出门，邻居担心其安全，请求上门探访",
    }
    async with httpx.AsyncClient(base_url=door, timeout=10) as http:
        posted = await http.post("/hotline/api/v1/help-requests", json=call, headers=api_token(door, "operator"))
        assert posted.status_code == 201, posted.text
        case_id = posted.json()["case_id"]
        worker = api_token(door, "worker")

        async def task() -> dict | None:
            rows = (await http.get("/router/api/v1/queue", headers=worker)).json()
            return next((r for r in rows if r["case_id"] == case_id and r["role"] == "lead"), None)

        task_id = (await eventually(task, timeout=60, interval=0.5, what=f"{case_id} on the worker's desk"))["task_id"]
        signed = await http.post(f"/router/api/v1/tasks/{task_id}/sign-for", headers=worker)
        assert signed.status_code == 200, signed.text
        back = await http.post(
            f"/router/api/v1/tasks/{task_id}/return",
            headers=worker,
            json={"reason": "not_our_responsibility", "note": "需社区上门探访，非本科室职责"},
        )
        assert back.status_code == 200, back.text
    return case_id


async def no_sideways_scroll(page: Page) -> None:
    fits = await page.evaluate(
        "() => document.documentElement.scrollWidth <= innerWidth"
        " && [...document.querySelectorAll('.table-wrap')].every((w) => w.scrollWidth <= w.clientWidth + 1)"
    )
    assert fits, "the workspace scrolls sideways at 1366x768"


async def test_the_coordinator_sees_overdue_cases_and_rates_and_reassigns_a_returned_case(
    pages: Pages, stack: ServiceSet, kafka_bootstrap: str
) -> None:
    returned_id = await returned_case(stack)  # first: the lifecycle topic then exists for the direct publish
    overdue_id = await publish_overdue_dispatch(stack, kafka_bootstrap)

    coordinator = await pages.person("coordinator")
    missing: list[str] = []
    coordinator.on("response", lambda r: missing.append(r.url) if r.status == 404 else None)
    await sign_in(coordinator, "coordinator")
    await expect(coordinator).to_have_url(re.compile(r"/notify/$"))
    await expect(coordinator.locator("#token")).to_be_hidden()  # no token asked for behind the front door

    # The overdue list (the default tab) fills by itself: need names, not codes.
    overdue_row = coordinator.locator("#cases tr", has_text=overdue_id)
    await expect(overdue_row).to_contain_text("特殊困难群体关爱探访", timeout=LIST_WAIT_MS)
    await expect(overdue_row).to_contain_text("超时")
    rates = coordinator.locator("#rates-box")
    for rate in ("响应率", "按时办结率", "满意率"):
        await expect(rates).to_contain_text(rate)
    await expect(coordinator.locator("#rates tr", has_text="民政")).to_contain_text("%")

    # A refused horizon is said next to its input, in the language shown, never replaced.
    hours = coordinator.get_by_label("临期提醒（小时内到期）")
    await hours.fill("-2")
    await hours.press("Enter")
    await expect(coordinator.locator("#hours-err")).to_contain_text("大于 0")
    await coordinator.locator("#lang").click()
    await expect(coordinator.locator("#hours-err")).to_contain_text("above 0")
    await coordinator.locator("#lang").click()
    await hours.fill("4")
    await hours.press("Enter")
    await expect(coordinator.locator("#hours-err")).to_be_hidden()

    # The returned tab counts and lists the returned case, with the start of the caller's description.
    tab = coordinator.locator('#tabs button[data-view="returned"]')
    await expect(tab.locator(".n")).to_have_text(re.compile(r"^[1-9]\d*$"), timeout=LIST_WAIT_MS)
    await tab.click()
    row = coordinator.locator("#cases tr", has_text=returned_id)
    await expect(row).to_contain_text("独居老人多日未见出门", timeout=LIST_WAIT_MS)
    await no_sideways_scroll(coordinator)

    # Keyboard: the case number opens the detail; the coordination form's inputs are labelled.
    await row.get_by_role("button", name=returned_id).focus()
    await coordinator.keyboard.press("Enter")
    await expect(coordinator.locator("#detail-id")).to_have_text(returned_id)
    await expect(coordinator.locator("#router-status")).to_contain_text("退单 1")
    await coordinator.get_by_role("button", name="改派").click()  # nothing chosen yet: said at the fields
    await expect(coordinator.locator('#coord-form [data-err="department"]')).to_have_text("请选择部门")
    await coordinator.get_by_label("承办 / 主办部门").select_option("housing")
    await coordinator.get_by_label("理由").fill("需上门核查住房安全，改由住建部门牵头")
    await coordinator.get_by_role("button", name="改派").click()

    notice = coordinator.locator("#notice")
    await expect(notice).to_contain_text(f"已改派：{returned_id} → 住房城乡建设")
    await expect(coordinator.locator("#detail-box")).to_be_hidden()  # the selection is cleared
    # The lists refresh on their own (the row now names the new lead) and the confirmation stays.
    await expect(row).to_contain_text("住房城乡建设", timeout=LIST_WAIT_MS)
    await expect(notice).to_contain_text(f"已改派：{returned_id}")

    case = httpx.get(
        f"{stack['frontdoor'].url}/router/api/v1/cases/{returned_id}",
        headers=api_token(stack["frontdoor"].url, "coordinator"),
        timeout=10,
    ).json()
    lead = [t for t in case["tasks"] if t["role"] == "lead" and t["status"] in ("pending", "queued")]
    assert case["status"] == "dispatched" and [t["department"] for t in lead] == ["housing"]

    assert "eyJ" not in await coordinator.content(), "a token is shown in the page"
    assert not [u for u in missing if "favicon" in u], missing
    await no_sideways_scroll(coordinator)
