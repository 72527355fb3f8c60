"""The operator's workspace (the hotline page) in a real browser, behind the front door: a call taken with
the keyboard alone and read back, every field error of a submission at once in the language shown, and
one callback per resolution. A failing test keeps screenshots (test-artifacts/)."""

from __future__ import annotations

import random
import re
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from tests.support.browser import Pages, api_token, sign_in
from tests.support.processes import ServiceSet
from tests.support.waiting import eventually

pytestmark = pytest.mark.e2e

CASE_NO = re.compile(r"CQ-\d{8}-\d{6}")


def a_phone() -> str:
    """A mobile number of this test's own, so its cases are told apart from other tests'."""
    return "139" + "".join(random.choices("0123456789", k=8))


async def operator_page(pages: Pages) -> Page:
    page = await pages.person("operator")
    await sign_in(page, "operator")
    await expect(page).to_have_url(re.compile(r"/hotline/$"))
    await expect(page.locator('#needs input[value="homeless_cold"]')).to_be_attached()  # the catalogue loaded
    return page


async def focused(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        "() => { const e = document.activeElement; return {name: e.name || '', value: e.value || '', id: e.id}; }"
    )


async def tab_to(page: Page, *, name: str, value: str | None = None, limit: int = 60) -> None:
    """Press Tab until the field (a checkbox by its value) has the focus, as a keyboard user does."""
    for _ in range(limit):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if (now["name"] == name and value is None) or (value is not None and now["value"] == value):
            return
    raise AssertionError(f"Tab never reached {name} {value or ''}: focus is on {await focused(page)}")


async def cases_of(page: Page, phone: str) -> list[dict[str, Any]]:
    reply = await page.request.get(f"/hotline/api/v1/cases?phone={phone}&reason=test-check")
    assert reply.ok, await reply.text()
    return list(await reply.json())


async def test_an_operator_takes_an_emergency_call_with_the_keyboard_and_reads_it_back(pages: Pages) -> None:
    page = await operator_page(pages)
    await expect(page.locator("#token")).to_be_hidden()
    assert await page.locator('link[rel="icon"]').count() == 1
    form = page.locator("#intake")
    phone = a_phone()

    # Typing and Tab only: name, phone, (ID-card, household district, district), township, address, the need
    # ticked with Space, Alt+E for an emergency, the description, and Enter.
    await page.get_by_label("来电人姓名").focus()
    await page.keyboard.type("李四")
    await page.keyboard.press("Tab")
    await page.keyboard.type(phone)
    await tab_to(page, name="township")
    await page.keyboard.type("解放碑街道")
    await page.keyboard.press("Tab")
    await page.keyboard.type("民族路地下通道")
    await tab_to(page, name="", value="homeless_cold")
    await page.keyboard.press("Space")
    await page.keyboard.press("Alt+e")
    await expect(form.locator("select[name=urgency]")).to_have_value("emergency")
    await expect(page.locator("#mark-emergency")).to_have_attribute("aria-keyshortcuts", "Alt+E")
    await tab_to(page, name="description")
    await page.keyboard.type("老人在地下通道露宿，天气寒冷")
    await page.keyboard.press("Tab")
    assert (await focused(page))["name"] == "" and await page.evaluate("document.activeElement.type") == "submit"
    await page.keyboard.press("Enter")

    result = page.locator("#intake-result")
    await expect(result).to_contain_text(CASE_NO)
    case_id = await page.locator("#accepted-case").inner_text()
    await expect(form.locator("input[name=name]")).to_be_focused()  # ready for the next call
    for shown in ("紧急", "李四", phone[:3] + "****" + phone[-4:], "渝中区", "解放碑街道", "民族路地下通道"):
        await expect(result).to_contain_text(shown)
    await expect(result).to_contain_text("流浪乞讨人员寒冷救助")
    await expect(result).to_contain_text("老人在地下通道露宿")
    await expect(result).to_contain_text("冻饿风险（寒冷）")  # why it is an emergency, in Chinese
    await expect(result).not_to_contain_text("emergency service")
    await expect(result.get_by_role("button", name="记录转接 110")).to_be_visible()
    assert phone not in await result.inner_text()  # the phone is masked
    await page.locator("#lang").click()
    await expect(result.get_by_role("button", name="Record a warm transfer to 110")).to_be_visible()
    await expect(result).to_contain_text("Risk from cold")
    await page.locator("#lang").click()
    await expect(result).to_contain_text("冻饿风险（寒冷）")

    # The form is clear for the next call; submitting the cleared form opens no second case.
    await expect(form.locator("input[name=name]")).to_have_value("")
    await expect(form.locator("input[name=phone]")).to_have_value("")
    await expect(form.locator("textarea[name=description]")).to_have_value("")
    await expect(form.locator("select[name=urgency]")).to_have_value("normal")
    assert await page.locator("#needs input:checked").count() == 0
    await form.locator("input[name=name]").focus()
    await page.keyboard.press("Enter")
    await expect(form.locator('[data-err~="caller.name"]')).not_to_be_empty()
    assert [c["case_id"] for c in await cases_of(page, phone)] == [case_id]
    await expect(result).to_contain_text(case_id)  # the summary stays

    # A double press of one filled form is one case.
    second_phone = a_phone()
    await form.locator("input[name=name]").fill("王五")
    await form.locator("input[name=phone]").fill(second_phone)
    await page.locator('#needs input[value="temp_assist_major"]').check()
    await form.locator("button[type=submit]").dblclick()
    await expect(result).to_contain_text("王五")
    await eventually(lambda: cases_of(page, second_phone), what="the second call listed")
    assert len(await cases_of(page, second_phone)) == 1

    # The list refreshes on its own; the page fits the screen; every input has a label.
    await expect(page.locator("#cases")).to_contain_text(case_id, timeout=15_000)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    unlabelled = await page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
             .filter((e) => e.type !== 'hidden' && e.offsetParent !== null)
             .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                            && !e.getAttribute('aria-labelledby'))
             .map((e) => e.name || e.id)"""
    )
    assert unlabelled == []


async def test_every_missing_field_is_named_at_once_in_chinese_then_english_and_back(pages: Pages) -> None:
    page = await operator_page(pages)
    form = page.locator("#intake")
    await page.locator('#needs input[value="temp_assist_unemployed"]').check()
    await expect(page.locator('[data-attr="unemployment_insured"]')).to_be_attached()  # its details asked for
    await page.get_by_label("来电人姓名").focus()
    await page.keyboard.press("Enter")  # name, phone and the months without income are all missing

    name, phone = form.locator('[data-err~="caller.name"]'), form.locator('[data-err~="caller.phone"]')
    months = form.locator('[data-err="months_without_income"]')
    await expect(name).to_have_text("必填：来电人姓名")
    await expect(phone).to_contain_text("必填：联系电话")
    await expect(months).to_contain_text("必填：连续无收入月数")
    await expect(page.locator("#intake-error")).to_contain_text("提交内容有误")

    await page.locator("#lang").click()
    await expect(name).to_have_text("required: the caller's name")
    await expect(phone).to_contain_text("required: a phone number")
    await expect(months).to_contain_text("required: Consecutive months without income")
    await expect(page.locator("#intake-error")).to_contain_text("The request has invalid fields")

    await page.locator("#lang").click()
    await expect(name).to_have_text("必填：来电人姓名")
    await expect(months).to_contain_text("必填：连续无收入月数")


async def resolve_through_the_router(stack: ServiceSet, case_id: str) -> None:
    """The lead department's worker signs for the case's task and resolves it (through the router's API)."""
    worker = api_token(stack["frontdoor"].url, "worker")
    async with httpx.AsyncClient(base_url=stack["router"].url, headers=worker, timeout=10) as router:

        async def task_id() -> str | None:
            queue = await router.get("/api/v1/queue")
            queue.raise_for_status()
            return next((t["task_id"] for t in queue.json() if t["case_id"] == case_id), None)

        task = await eventually(task_id, timeout=60, interval=0.5, what=f"{case_id} on the civil_affairs queue")
        (await router.post(f"/api/v1/tasks/{task}/sign-for")).raise_for_status()
        resolved = await router.post(f"/api/v1/tasks/{task}/resolve", json={"outcome": "已送救助站", "note": "已安置"})
        resolved.raise_for_status()


async def test_a_resolved_cases_callback_is_confirmed_and_a_second_one_is_refused_saying_why(
    pages: Pages, stack: ServiceSet
) -> None:
    page = await operator_page(pages)
    form = page.locator("#intake")
    await form.locator("input[name=name]").fill("赵六")
    await form.locator("input[name=phone]").fill(a_phone())
    await form.locator("input[name=address]").fill("较场口 12 号")
    await page.locator('#needs input[value="special_group_visit"]').check()  # civil affairs alone
    await form.locator("button[type=submit]").click()
    await expect(page.locator("#intake-result")).to_contain_text(CASE_NO)
    case_id = await page.locator("#accepted-case").inner_text()

    await resolve_through_the_router(stack, case_id)
    await page.locator("#cases").get_by_role("link", name=case_id).click()
    detail = page.locator("#case-detail")
    await expect(detail.locator("#case-status")).to_have_text("已办结", timeout=30_000)  # it refreshes itself

    await page.get_by_label("回访满意度").select_option("satisfied")
    await page.get_by_label("回访备注").fill("已入住救助站")
    await page.get_by_label("回访备注").press("Enter")
    await expect(detail.locator("#cb-ok")).to_contain_text("已记录回访：满意")
    await expect(page.get_by_label("回访备注")).to_have_value("")  # the input is cleared
    await expect(detail.locator("#cb-hint")).to_contain_text("本次办结已回访")
    async with page.expect_request(re.compile(r"/status$")):  # the next poll of the open case
        pass
    await expect(detail.locator("#cb-ok")).to_contain_text("已记录回访：满意")  # not overwritten by it

    await page.get_by_role("button", name="记录回访").click()
    await expect(detail.locator("#cb-msg")).to_contain_text("本次办结已回访过，不能重复回访")
    await expect(detail.locator("#cb-msg")).to_contain_text("重启后再次办结")
    await page.locator("#lang").click()
    await expect(detail.locator("#cb-msg")).to_contain_text("This resolution already has its callback")
