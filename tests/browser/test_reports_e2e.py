"""The coordinator's 报表 tab and escalation notice (督办单), in a real browser behind the front door: a
report over the last 30 days with its charts drawn by the charting library notify serves itself (no CDN),
a CSV export, and the printable notice of an escalation opened from the case's detail."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import expect

from common.kafka import event_record
from contracts.events.router import CASE_LIFECYCLE_TOPIC
from tests.support.browser import Pages, sign_in
from tests.support.events import dispatched, new_case_id
from tests.support.kafka import create_topics
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e
WAIT_MS = 60_000


async def test_the_coordinator_runs_a_report_exports_it_and_prints_an_escalation_notice(
    pages: Pages, stack: ServiceSet, kafka_bootstrap: str
) -> None:
    topic = stack.namespace + CASE_LIFECYCLE_TOPIC
    await create_topics(kafka_bootstrap, topic)
    case_id = new_case_id()
    # Dispatched two days ago, never signed for: late, and escalated to the department head (P6.2).
    event = dispatched(case_id, at=datetime.now(UTC) - timedelta(days=2), needs=("special_group_visit",))
    key, value, headers = event_record(event.model_dump(mode="json"))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()

    page = await pages.person("coordinator")
    chart_from: list[str] = []
    page.on("request", lambda r: chart_from.append(r.url) if "chart" in r.url else None)
    await sign_in(page, "coordinator")
    await expect(page).to_have_url(re.compile(r"/notify/$"))
    await expect(page.locator("#cases tr", has_text=case_id)).to_be_visible(timeout=WAIT_MS)

    await page.get_by_role("tab", name="报表").click()
    await expect(page.get_by_label("开始日期")).to_be_visible()
    await page.get_by_label("统计周期").select_option("day")
    await page.get_by_role("button", name="生成报表").click()
    row = page.locator("#report-rows tr", has_text="渝中区")
    await expect(row.first).to_be_visible(timeout=WAIT_MS)
    assert await page.evaluate("typeof window.Chart") == "function"
    assert chart_from and all(u.startswith(pages.base_url) for u in chart_from)  # served by notify, no CDN
    assert await page.evaluate("Chart.getChart(document.getElementById('chart-volumes')) !== undefined")

    async with page.expect_download() as download_info:
        await page.get_by_role("button", name="导出 CSV").click()
    download = await download_info.value
    text = (await download.path()).read_text(encoding="utf-8-sig")
    assert text.startswith("时段 Period,") and "500103" in text

    # The case's detail lists its escalation; the notice opens printable, naming department and tier.
    await page.get_by_role("tab", name=re.compile("已超时")).click()
    await page.locator("#cases").get_by_role("button", name=case_id).click()
    link = page.locator("#events").get_by_role("link", name="打印督办单").first
    await expect(link).to_be_visible(timeout=WAIT_MS)
    async with page.context.expect_page() as popup_info:
        await link.click()
    notice = await popup_info.value
    await expect(notice.locator("h1")).to_have_text("督 办 单")
    await expect(notice.locator("#department")).to_contain_text("民政", timeout=WAIT_MS)
    await expect(notice.locator("#case_id")).to_contain_text(case_id)
    await expect(notice.locator("#asked")).to_contain_text("书面答复")
