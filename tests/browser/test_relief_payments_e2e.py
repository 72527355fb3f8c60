"""A relief officer's payments to the bank in a real browser, behind the front door (P6.1, P5.2): the
grant shows its applicant (name, masked ID-card and phone, household), the phone is shown only with a
reason; the payment file downloads from the bank tab with the payee's full ID-card number; the bank's
return file is uploaded and each row's outcome is shown (paid, unknown reference), and the same file
again changes nothing and says so. The registry and notices tabs open."""

from __future__ import annotations

import random
import re

import httpx
import pytest
from playwright.async_api import expect

from services.relief.domain.registry import id_card_check_char
from tests.browser.test_relief_e2e import ARRIVES, failed_requests, fits_the_screen
from tests.support.browser import Pages, api_token, sign_in
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e


def a_call(stack: ServiceSet) -> tuple[str, str, str]:
    """A major hardship through the hotline API; the case id, the caller's name and ID-card number."""
    first17 = f"5001031980{random.randint(1, 12):02d}{random.randint(1, 28):02d}{random.randint(100, 999)}"
    card = first17 + id_card_check_char(first17)
    name = f"郑{random.choice('一二三四五六七八九')}{random.choice('甲乙丙丁戊')}"
    body = {
        "caller": {"name": name, "phone": f"139{random.randint(10_000_000, 99_999_999)}", "id_card": card},
        "place": {"district": "500103", "address": "解放碑民族路 9 号"},
        "needs": ["temp_assist_major"],
        "household_status": "low_income",
        "description": "家人重病，医疗费用无力承担",
    }
    headers = api_token(stack["frontdoor"].url, "operator")
    reply = httpx.post(f"{stack['hotline'].url}/api/v1/help-requests", json=body, headers=headers, timeout=30)
    assert reply.status_code == 201, reply.text
    return str(reply.json()["case_id"]), name, card


async def test_an_officer_downloads_the_payment_file_and_uploads_the_banks_return_with_a_report_per_row(
    stack: ServiceSet, pages: Pages, tmp_path
):
    case_id, name, card = a_call(stack)
    eid = f"{case_id}:P5.2c"
    page = await pages.person("relief")
    failed = failed_requests(page)
    await sign_in(page, "relief")
    await expect(page).to_have_url(re.compile(r"/relief/$"))

    row = page.locator("#rows tr[data-id]", has_text=case_id)
    await expect(row).to_contain_text(name, timeout=ARRIVES)  # the applicant, not a recipient id
    await expect(row).to_contain_text(f"500103********{card[-4:]}")
    await expect(row).to_contain_text("低收入家庭")
    assert card not in await row.inner_text()
    await row.get_by_role("button", name="查看电话").click()
    await page.get_by_label("查看原因").fill("回访核实")
    await page.get_by_label("查看原因").press("Enter")
    await expect(page.locator("#entMsg")).to_contain_text("申请人电话：139")
    await fits_the_screen(page)

    await row.get_by_role("button", name="审批", exact=True).click()
    await page.get_by_label(re.compile("金额（元）")).fill("2000.00")
    await page.get_by_label("审批意见").press("Enter")
    await expect(row).to_contain_text("已批准")

    await page.get_by_role("tab", name="银行发放").click()
    pending = page.locator("#pending tr", has_text=eid)
    await expect(pending).to_contain_text("2,000.00")
    await expect(pending).to_contain_text(name)
    async with page.expect_download() as info:
        await page.get_by_role("button", name="导出 CSV").click()
    download = await info.value
    assert re.match(r"payments-500103-\d{8}-\d{6}\.csv$", download.suggested_filename)
    exported = (await download.path()).read_bytes().decode("utf-8-sig")
    assert f"{eid},{name},{card},2000.00,500103" in exported
    await expect(page.locator("#payMsg")).to_contain_text("导出已记录")
    async with page.expect_download() as info:
        await page.get_by_role("button", name="导出 Excel").click()
    assert (await info.value).suggested_filename.endswith(".xlsx")

    returned = tmp_path / "回单.csv"
    returned.write_text(
        "reference,amount_yuan,status,bank_transaction_id,date\n"
        f"{eid},2000.00,paid,TX-{case_id},2021-03-21\n"
        "CQ-19990101-000001:P5.2b,10.00,paid,TX-X,2021-03-21\n",
        encoding="utf-8",
    )
    await page.get_by_label("回单文件（CSV 或 Excel）").set_input_files(returned)
    await page.get_by_role("button", name="导入回单").click()
    report = page.locator("#returnLines")
    await expect(report.locator('tr[data-line="2"]')).to_contain_text("已登记发放")
    await expect(report.locator('tr[data-line="3"]')).to_contain_text("本区县无此付款编号")
    await expect(page.locator("#returnMsg")).to_contain_text("本次登记发放 1 笔")
    await expect(page.locator("#pending")).not_to_contain_text(eid)

    await page.get_by_label("回单文件（CSV 或 Excel）").set_input_files(returned)
    await page.get_by_role("button", name="导入回单").click()
    await expect(report.locator('tr[data-line="2"]')).to_contain_text("此前已发放，未重复登记")
    await expect(page.locator("#returnMsg")).to_contain_text("未做任何更改")
    await expect(page.locator("#returnMsg")).to_contain_text("此文件已于")
    await fits_the_screen(page)

    await page.get_by_role("tab", name="救助事项").click()
    await expect(row).to_contain_text("已发放")
    await page.get_by_role("tab", name="在册对象查询").click()
    await expect(page.get_by_label("姓名或身份证号")).to_be_visible()
    await expect(page.locator("#regCount")).to_contain_text("共")
    await page.get_by_role("tab", name="户籍地通知").click()
    await expect(page.locator("#noticeCount")).to_contain_text("共")
    await fits_the_screen(page)
    assert failed == []
