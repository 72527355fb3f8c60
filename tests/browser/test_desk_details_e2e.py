"""Who and where on the department desk in a real browser (Debian's Chromium), behind the front door: the
worker sees the caller of a new case masked, reveals them with a reason, sees the name and a tel: link,
and the reveal is in the audit records (P2.2, P6.2, P6.3); the caller's earlier case is listed (P2.3); an
escalation (督办) appears in its tab and is answered in writing. A failing test keeps screenshots."""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Page, expect

from contracts.events import SLA_EVENTS_TOPIC
from contracts.events.notify import SlaEscalated
from tests.support.browser import Pages, api_token, sign_in
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.e2e

ARRIVES = 60_000  # hotline -> Kafka -> router -> department queue -> the desk's next refresh


async def take_call(stack: ServiceSet, phone: str, description: str) -> str:
    """The operator takes a homeless_cold emergency in 500103 (civil affairs leads)."""
    call = {
        "caller": {"name": "李四", "phone": phone},
        "place": {"district": "500103", "township": "解放碑街道", "address": "解放碑地下通道3号出口"},
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


async def reveal_records(stack: ServiceSet, case_id: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(timeout=15) as http:
        reply = await http.get(
            f"{stack['router'].url}/api/v1/cases/{case_id}/reveals",
            headers=api_token(stack["frontdoor"].url, "coordinator"),
        )
    assert reply.status_code == 200, reply.text
    records: list[dict[str, Any]] = reply.json()
    return records


async def escalate(stack: ServiceSet, case_id: str) -> SlaEscalated:
    """What notify publishes when a department misses its sign-for deadline and the coordinator is told."""
    now = datetime.now(UTC)
    event = SlaEscalated(
        case_id=case_id,
        occurred_at=now,
        clock="department",
        target="sign_for",
        department="civil_affairs",
        district="500103",
        due_at=now - timedelta(minutes=30),
        sla_class="emergency",
        tier="district_coordinator",
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
    await producer.start()
    try:
        await producer.send_and_wait(
            stack.namespace + SLA_EVENTS_TOPIC, event.model_dump_json().encode(), key=case_id.encode()
        )
    finally:
        await producer.stop()
    return event


async def open_desk(pages: Pages) -> Page:
    worker = await pages.person("worker")
    await sign_in(worker, "worker")
    await expect(worker).to_have_url(re.compile(r"/router/$"))
    await expect(worker.locator("#msg")).to_contain_text("共")
    return worker


async def test_the_worker_reveals_the_caller_with_a_reason_and_calls_them(pages: Pages, stack: ServiceSet) -> None:
    phone = "139" + "".join(random.choices("0123456789", k=8))
    earlier = await take_call(stack, phone, "上周曾来电求助，露宿桥洞")
    case_id = await take_call(stack, phone, "老人在地下通道露宿，衣着单薄，需立即救助送往救助站")
    worker = await open_desk(pages)

    rows = worker.locator("#rows")
    await expect(rows).to_contain_text(case_id, timeout=ARRIVES)
    row = rows.locator("tr", has_text=case_id)
    masked = f"{phone[:3]}****{phone[-4:]}"
    await expect(row).to_contain_text("来电人 李* · " + masked)
    await expect(row).to_contain_text("解放碑地下通…")
    await expect(row).not_to_contain_text(phone)

    await row.get_by_role("button", name="办理").click()
    await expect(worker.locator("#f-sign button")).to_be_focused()  # the actions keep the focus, not the reveal
    box = worker.locator("#case-box")
    await expect(box.locator("#who-masked")).to_contain_text("李*")
    await expect(box.locator("#who-masked")).to_contain_text(masked)
    await expect(box.locator("#description")).to_have_text("老人在地下通道露宿，衣着单薄，需立即救助送往救助站")
    await expect(box.locator("#earlier")).to_contain_text(earlier)  # the same phone called before
    await expect(box).not_to_contain_text(phone)

    await worker.get_by_role("button", name="查看来电人信息…").click()
    reason = worker.get_by_label("查看理由")
    await expect(reason).to_be_focused()
    await reason.press("Enter")
    await expect(worker.locator("#err-reveal-reason")).to_have_text("请填写查看理由")
    await reason.fill("回电核实露宿位置")
    await reason.press("Enter")

    clear = worker.locator("#who-clear")
    await expect(clear).to_be_visible()
    await expect(worker.locator("#clear-name")).to_have_text("李四")
    tel = worker.locator("#clear-tel")
    await expect(tel).to_have_attribute("href", f"tel:{phone}")
    await expect(tel).to_have_text(phone)
    await expect(tel).to_be_focused()
    await expect(worker.locator("#clear-address")).to_contain_text("解放碑地下通道3号出口")
    await expect(clear).to_contain_text("回电核实露宿位置")
    records = await reveal_records(stack, case_id)
    assert [(r["who"], r["reason"], r["fields"]) for r in records] == [
        ("民政局 李强（渝中区）（worker）", "回电核实露宿位置", ["caller_name", "caller_phone", "address"])
    ]
    assert await worker.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), "sideways scroll"

    # Picked again, the caller is masked until revealed again (with a new reason, a new record).
    await worker.locator("#unselect").click()
    await row.get_by_role("button", name="办理").click()
    await expect(worker.locator("#who-clear")).to_be_hidden()


async def test_an_escalation_appears_in_its_tab_and_is_answered_in_writing(pages: Pages, stack: ServiceSet) -> None:
    phone = "139" + "".join(random.choices("0123456789", k=8))
    case_id = await take_call(stack, phone, "独居老人断粮两天")
    worker = await open_desk(pages)
    await expect(worker.locator("#rows")).to_contain_text(case_id, timeout=ARRIVES)  # the router holds the case
    await escalate(stack, case_id)

    await worker.locator("#tab-esc").click()
    escalations = worker.locator("#esc-rows")
    await expect(escalations).to_contain_text(case_id, timeout=ARRIVES)  # refreshes on its own
    await expect(worker.locator("#esc-count")).not_to_have_text("0")
    row = escalations.locator("tr", has_text=case_id)
    await expect(row).to_contain_text("区县协调人督办")
    await expect(row).to_contain_text("签收")
    await expect(row).to_contain_text("已超时")
    answer = row.get_by_label(f"答复内容 {case_id}")
    await answer.fill("已签收，工作人员正前往老人家中送餐")
    await answer.press("Enter")
    await expect(worker.locator("#notice")).to_contain_text(f"已答复督办 {case_id}")
    await expect(escalations).not_to_contain_text(case_id)
    async with httpx.AsyncClient(timeout=15) as http:
        reply = await http.get(
            f"{stack['router'].url}/api/v1/cases/{case_id}", headers=api_token(stack["frontdoor"].url, "worker")
        )
    step = next(h for h in reply.json()["history"] if h["action"] == "escalation_acknowledged")
    assert step["note"] == "已签收，工作人员正前往老人家中送餐"
