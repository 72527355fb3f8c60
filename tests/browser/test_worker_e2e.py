"""The department worker's desk in a real browser (Debian's Chromium), behind the front door: a new
emergency appears on its own, the worker signs for it, records the first contact with the caller,
resolves it and waives a silent co-handler, all from the keyboard; a second case is returned after a
confirmation and the page says where it went. A failing test keeps screenshots (test-artifacts/)."""

from __future__ import annotations

import random
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, Response, expect

from tests.support.browser import Pages, api_token, sign_in
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e

ARRIVES = 60_000  # hotline -> Kafka -> router -> department queue -> the desk's next refresh


async def take_call(stack: ServiceSet, description: str) -> str:
    """The operator takes a homeless_cold emergency in 500103 (civil affairs leads, health co-handles)."""
    call = {
        "caller": {"name": "李四", "phone": f"139{random.randrange(10**8):08d}"},
        "place": {"district": "500103", "address": "解放碑地下通道"},
        "needs": ["homeless_cold"],
        "urgency": "emergency",
        "description": description,
    }
    async with httpx.AsyncClient(timeout=15) as http:
        reply = await http.post(
            f"{stack['hotline'].url}/api/v1/help-requests",
            json=call,
            headers=api_token(stack["frontdoor"].url, "operator"),
        )
    assert reply.status_code == 201, reply.text
    case_id: str = reply.json()["case_id"]
    return case_id


async def case_seen_by_worker(stack: ServiceSet, case_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=15) as http:
        reply = await http.get(
            f"{stack['router'].url}/api/v1/cases/{case_id}", headers=api_token(stack["frontdoor"].url, "worker")
        )
    assert reply.status_code == 200, reply.text
    case: dict[str, Any] = reply.json()
    return case


async def open_desk(pages: Pages) -> tuple[Page, list[str]]:
    worker = await pages.person("worker")
    missing: list[str] = []

    def note_missing(response: Response) -> None:
        if response.status == 404:
            missing.append(response.url)

    worker.on("response", note_missing)
    await sign_in(worker, "worker")
    await expect(worker).to_have_url(re.compile(r"/router/$"))
    await expect(worker.locator("#msg")).to_contain_text("共")  # the queue loaded
    return worker, missing


async def fits_the_screen(page: Page) -> None:
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scroll"


async def test_a_new_emergency_appears_and_is_signed_for_contacted_and_resolved_from_the_keyboard(
    pages: Pages, stack: ServiceSet
) -> None:
    worker, missing = await open_desk(pages)
    await expect(worker.locator("#token")).to_be_hidden()  # no token asked for, none shown
    await expect(worker.locator("#desk")).to_be_visible()
    assert await worker.locator("text=裁定承办部门").count() == 0  # no coordinator panel on the desk
    await fits_the_screen(worker)

    case_id = await take_call(stack, "老人在地下通道露宿，天气寒冷，衣着单薄，需立即救助送往救助站")
    rows = worker.locator("#rows")
    await expect(rows).to_contain_text(case_id, timeout=ARRIVES)  # nobody pressed a button
    row = rows.locator("tr", has_text=case_id)
    await expect(row).to_contain_text("紧急")
    await expect(row).to_contain_text("流浪乞讨人员寒冷救助")  # the need's name, not its code
    await expect(row).to_contain_text("老人在地下通道露宿")  # the start of the description
    await expect(rows.locator("tr").first).to_have_class(re.compile(r"\bemergency\b"))  # emergencies first
    await fits_the_screen(worker)

    # Sign for: Tab to the row's button, Enter.
    await row.get_by_role("button", name="签收").focus()
    await worker.keyboard.press("Enter")
    notice = worker.locator("#notice")
    await expect(notice).to_contain_text(f"已签收 {case_id}")
    await expect(row).to_contain_text("未首次联系")

    # First contact with the caller, beside the progress note; Enter submits.
    await row.get_by_role("button", name="办理").focus()
    await worker.keyboard.press("Enter")
    note = worker.get_by_label("进展说明")
    await expect(note).to_be_focused()
    await worker.keyboard.type("已电话联系来电人，救助车辆已出发")
    await worker.get_by_label("已联系来电人（首次联系）").check()
    await fits_the_screen(worker)
    await note.press("Enter")
    await expect(notice).to_contain_text(f"已记录进展，并登记首次联系来电人：{case_id}")
    await expect(worker.locator("#panel")).to_be_hidden()  # the selection and the note are cleared
    await expect(note).to_have_value("")
    await expect(row).to_contain_text("已联系来电人")
    case = await case_seen_by_worker(stack, case_id)
    lead = next(t for t in case["tasks"] if t["department"] == "civil_affairs")
    assert lead["first_contact_at"] and lead["first_contact_by"] == "worker"

    # Resolve with an outcome: the case waits for health, the co-handler.
    await row.get_by_role("button", name="办理").focus()
    await worker.keyboard.press("Enter")
    await worker.get_by_label("办理结果").fill("已送市救助管理站安置")
    await worker.get_by_label("办理结果").press("Enter")
    await expect(notice).to_contain_text(f"主办已办结 {case_id}")
    await expect(notice).to_contain_text("卫生健康")
    await expect(row).to_contain_text("待协办：卫生健康")

    # The confirmation outlives the next refresh of the list.
    listed = await worker.locator("#msg").inner_text()
    await expect(worker.locator("#msg")).not_to_have_text(listed, timeout=15_000)
    await expect(notice).to_contain_text(f"主办已办结 {case_id}")

    # The lead waives the silent co-handler, with a reason: the case is resolved and leaves the queue.
    await row.get_by_role("button", name="办理").click()
    await expect(worker.locator("#co-list")).to_contain_text("卫生健康")
    await worker.get_by_label("免除理由").fill("卫生健康部门两小时未响应，当事人已安置")
    await worker.get_by_label("免除理由").press("Enter")
    await expect(notice).to_contain_text("已免除卫生健康的协办任务")
    await expect(notice).to_contain_text("案件已办结")
    await expect(rows).not_to_contain_text(case_id)
    case = await case_seen_by_worker(stack, case_id)
    assert (case["status"], case["outcome"]) == ("resolved", "已送市救助管理站安置")
    assert [t["status"] for t in case["tasks"]] == ["resolved", "waived"]

    await worker.locator("#lang").click()  # the confirmation follows the language
    await expect(notice).to_contain_text("the case is resolved")
    await worker.locator("#lang").click()
    assert not [url for url in missing if "favicon" in url], missing


async def test_a_return_is_confirmed_and_the_worker_is_told_the_case_went_to_arbitration(
    pages: Pages, stack: ServiceSet
) -> None:
    worker, _ = await open_desk(pages)
    case_id = await take_call(stack, "桥洞下有人露宿，疑似外区县人员")
    rows = worker.locator("#rows")
    await expect(rows).to_contain_text(case_id, timeout=ARRIVES)
    row = rows.locator("tr", has_text=case_id)

    await row.get_by_role("button", name="办理").click()
    await worker.get_by_label("退单理由").select_option("not_our_responsibility")
    explanation = worker.get_by_label("退单说明")
    await explanation.press("Enter")
    await expect(worker.locator("#err-return-note")).to_have_text("请填写退单说明")  # next to its input
    await worker.locator("#lang").click()
    await expect(worker.locator("#err-return-note")).to_have_text("Explain why the task is returned")
    await worker.locator("#lang").click()
    await explanation.fill("经核实不属本部门职责")
    await explanation.press("Enter")
    confirm = worker.locator("#return-confirm")
    await expect(confirm).to_contain_text(f"确认退单？案件 {case_id}")
    await expect(rows).to_contain_text(case_id)  # nothing sent yet
    yes = worker.get_by_role("button", name="确认退单")
    await expect(yes).to_be_focused()
    await worker.keyboard.press("Enter")

    notice = worker.locator("#notice")
    await expect(notice).to_contain_text(f"已退单 {case_id}：案件已转区县协调人仲裁")
    await expect(rows).not_to_contain_text(case_id)
    await expect(worker.locator("#panel")).to_be_hidden()
    case = await case_seen_by_worker(stack, case_id)
    assert case["status"] == "arbitration"


async def test_a_coordinator_is_sent_to_the_coordination_workspace_not_shown_a_desk(pages: Pages) -> None:
    coordinator = await pages.person("coordinator")
    await sign_in(coordinator, "coordinator")
    await expect(coordinator).to_have_url(re.compile(r"/notify/$"))
    await coordinator.goto("/router/")
    await expect(coordinator.locator("#elsewhere")).to_contain_text("督办统筹")
    await expect(coordinator.locator("#desk")).to_be_hidden()
