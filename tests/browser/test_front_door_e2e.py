"""The way people work, in a real browser (Debian's Chromium): the services and the front door as
processes, everyone signing in at one address. An operator takes an emergency call on the hotline
page; the lead department's worker sees the task on the desk page; an admin disables an account and
that person's next request is refused. A failing test keeps screenshots (test-artifacts/)."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.support.browser import Pages, sign_in, until_listed

pytestmark = pytest.mark.e2e


async def test_an_operator_takes_an_emergency_call_and_the_lead_department_sees_the_task(pages: Pages):
    operator = await pages.person("operator")
    await sign_in(operator, "operator")
    await expect(operator).to_have_url(re.compile(r"/hotline/$"))
    await expect(operator.locator("#frontdoor-who")).to_contain_text("接线员 王芳")
    await expect(operator.locator("#token")).to_be_hidden()  # no token asked for

    form = operator.locator("#intake")
    await form.locator("input[name=name]").fill("李四")
    await form.locator("input[name=phone]").fill("13912345678")
    await expect(form.locator("select[name=district]")).to_have_value("500103")  # from the account
    await form.locator("input[name=address]").fill("解放碑地下通道")
    await operator.locator('#needs input[value="homeless_cold"]').check()
    await form.locator("select[name=urgency]").select_option("emergency")
    await form.locator("textarea[name=description]").fill("老人在地下通道露宿，天气寒冷")
    await form.locator("button[type=submit]").click()
    result = operator.locator("#intake-result")
    await expect(result).to_contain_text(re.compile(r"CQ-\d{8}-\d{6}"))
    await expect(result).to_contain_text("紧急")
    found = re.search(r"CQ-\d{8}-\d{6}", await result.inner_text())
    assert found is not None
    case_id = found.group(0)

    # The lead department of a homeless_cold emergency in 500103 is civil affairs: its worker's desk.
    worker = await pages.person("worker")
    await sign_in(worker, "worker")
    await expect(worker).to_have_url(re.compile(r"/router/$"))
    await expect(worker.locator("#frontdoor-who")).to_contain_text("部门工作人员")
    await until_listed(worker, "#load", "#rows", case_id)
    await expect(worker.locator("#rows tr", has_text=case_id)).to_contain_text("紧急")


async def test_an_admin_disables_an_account_and_that_persons_next_request_is_refused(pages: Pages):
    worker = await pages.person("worker")
    await sign_in(worker, "worker")
    await expect(worker).to_have_url(re.compile(r"/router/$"))
    await expect(worker.locator("#msg")).to_contain_text("共")  # the queue loaded

    admin = await pages.person("admin")
    await sign_in(admin, "admin")
    await expect(admin).to_have_url(re.compile(r"/accounts/$"))
    row = admin.locator('#rows tr[data-username="worker"]')
    await row.get_by_role("button", name="停用").click()
    await expect(row).to_contain_text("已停用")

    await worker.locator("#load").click()
    await expect(worker.locator("#frontdoor-ended")).to_be_visible()
    await expect(worker.locator("#msg")).to_contain_text("账户已停用")
    await worker.reload()
    await expect(worker).to_have_url(re.compile(r"/\?next=/router/"))
    await sign_in(worker, "worker")
    await expect(worker.locator("#error")).to_contain_text("账户已停用")

    await row.get_by_role("button", name="启用").click()  # and back: the same password works again
    await expect(row).to_contain_text("正常")
    await sign_in(worker, "worker")
    await expect(worker).to_have_url(re.compile(r"/router/$"))


async def test_a_sign_in_with_a_field_missing_names_it_in_chinese_then_english(pages: Pages):
    someone = await pages.person("someone")
    await someone.goto("/")
    await someone.locator("#password").fill("whatever-1")
    await someone.locator("#submit").click()
    await expect(someone.locator('[data-err="username"]')).to_have_text("内容过短")
    await expect(someone.locator("#error")).to_contain_text("提交内容有误")
    await someone.locator("#lang").click()
    await expect(someone.locator("#error")).to_contain_text("The request has invalid fields")
    await expect(someone.locator('[data-err="username"]')).to_contain_text("at least 1 character")
