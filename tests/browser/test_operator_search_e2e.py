"""The operator's search, acceptance slip and callbacks worklist (回访) in a real browser, behind the front
door (P6.2): a call taken with the caller's consent to texts, found again by part of the name and by the
phone, its slip printed; once resolved it is on the callbacks tab until its callback is recorded."""

from __future__ import annotations

import random
import re
import time

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.browser import Pages, api_token, sign_in
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

CASE_NO = re.compile(r"CQ-\d{8}-\d{6}")


def a_phone() -> str:
    return "137" + "".join(random.choices("0123456789", k=8))


def a_name() -> str:
    """A caller's name of this test's own (a rare surname and two random characters)."""
    return "闻人" + "".join(random.choices("春夏秋冬梅兰竹菊松柏山河湖海云雨", k=2))


async def operator_page(pages: Pages) -> Page:
    page = await pages.person("operator")
    await sign_in(page, "operator")
    await expect(page).to_have_url(re.compile(r"/hotline/$"))
    await expect(page.locator('#needs input[value="special_group_visit"]')).to_be_attached()
    return page


async def take_call(page: Page, name: str, phone: str) -> str:
    form = page.locator("#intake")
    await form.locator("input[name=name]").fill(name)
    await form.locator("input[name=phone]").fill(phone)
    await form.locator("input[name=address]").fill("较场口 21 号")
    await page.locator('#needs input[value="special_group_visit"]').check()  # civil affairs alone
    consent = page.get_by_label("来电人同意接收本案短信", exact=False)
    await expect(consent).not_to_be_checked()  # unchecked unless the caller agrees
    await consent.check()
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#intake-result")).to_contain_text(CASE_NO)
    await expect(page.locator("#accepted-consent")).to_have_text("来电人同意接收短信")
    await expect(consent).not_to_be_checked()  # the next call asks again
    return await page.locator("#accepted-case").inner_text()


async def resolve_through_the_router(stack: ServiceSet, case_id: str) -> None:
    worker = api_token(stack["frontdoor"].url, "worker")
    async with httpx.AsyncClient(base_url=stack["router"].url, headers=worker, timeout=10) as router:

        async def task_id() -> str | None:
            queue = await router.get("/api/v1/queue")
            queue.raise_for_status()
            return next((t["task_id"] for t in queue.json() if t["case_id"] == case_id), None)

        task = await eventually(task_id, timeout=60, interval=0.5, what=f"{case_id} on the civil_affairs queue")
        (await router.post(f"/api/v1/tasks/{task}/sign-for")).raise_for_status()
        resolved = await router.post(f"/api/v1/tasks/{task}/resolve", json={"outcome": "已上门探访", "note": "已解决"})
        resolved.raise_for_status()


async def test_an_operator_finds_a_case_by_name_and_by_phone_and_prints_its_slip(pages: Pages) -> None:
    page = await operator_page(pages)
    name, phone = a_name(), a_phone()
    case_id = await take_call(page, name, phone)

    await page.get_by_label("姓名（部分）").fill(name[1:])  # part of the name
    await page.get_by_role("button", name="查询", exact=True).click()
    rows = page.locator("#cases tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text(case_id)
    await expect(rows.first).to_contain_text(name[0] + "***")  # masked
    await expect(rows.first).to_contain_text(phone[:3] + "****" + phone[-4:])
    assert phone not in await page.locator("#cases").inner_text()
    await expect(page.locator("#list-title")).to_contain_text("第 1 页")

    await page.get_by_role("button", name="清空条件").click()
    await expect(page.get_by_label("姓名（部分）")).to_have_value("")
    await page.get_by_label("电话或身份证号（精确）").fill(phone[:3] + " " + phone[3:7] + " " + phone[7:])
    await page.get_by_label("电话或身份证号（精确）").press("Enter")
    await expect(rows).to_have_count(1)
    await rows.first.get_by_role("link", name=case_id).click()
    detail = page.locator("#case-detail")
    await expect(detail).to_contain_text(case_id)

    async with page.context.expect_page() as opened:
        await detail.get_by_role("button", name="打印受理单").click()
    slip = await opened.value
    await expect(slip.locator("h1")).to_have_text("社会救助热线受理单")
    await expect(slip.locator("body")).to_contain_text(case_id)
    await expect(slip.locator("body")).to_contain_text("特殊困难群体关爱探访")
    await expect(slip.get_by_role("button", name="打印 Print")).to_be_visible()
    assert phone not in await slip.locator("body").inner_text()

    await page.locator("#lang").click()
    await expect(page.get_by_label("Caller's name (part)")).to_be_visible()
    await expect(page.locator("#list-title")).to_contain_text("page 1")


async def test_a_resolved_case_waits_on_the_callbacks_tab_until_its_callback_is_recorded(
    pages: Pages, stack: ServiceSet
) -> None:
    page = await operator_page(pages)
    case_id = await take_call(page, a_name(), a_phone())
    await resolve_through_the_router(stack, case_id)

    await page.get_by_role("tab", name="待回访").click()
    await expect(page.locator("#cb-title")).to_contain_text("72 小时")
    await page.get_by_label("也显示未到期的").check()  # resolved just now: due in 72 hours, not today
    listed = page.locator("#callbacks tr", has_text=case_id)
    deadline = time.monotonic() + 60
    while True:  # the resolution travels router -> Kafka -> hotline; the tab's own button reloads it
        await page.get_by_role("button", name="刷新").click()
        try:
            await expect(listed).to_have_count(1, timeout=3_000)
            break
        except AssertionError:
            assert time.monotonic() < deadline, "the resolved case never reached the callbacks tab"
    await expect(listed).to_contain_text("剩余")
    await listed.get_by_role("link", name=case_id).click()
    await expect(page.locator("#case-status")).to_have_text("已办结")
    await page.get_by_label("回访满意度").select_option("satisfied")
    await page.get_by_role("button", name="记录回访").click()
    await expect(page.locator("#cb-ok")).to_contain_text("已记录回访：满意")
    await expect(listed).to_have_count(0)  # it leaves the worklist
