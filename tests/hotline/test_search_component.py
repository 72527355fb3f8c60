"""Case search, the callbacks worklist (回访), the acceptance slip and the caller's consent to texts, through
the real app and store (P6.2)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.events.router import Assignment, CaseDispatched, CaseResolved, Decision
from tests.hotline.conftest import Harness, call

pytestmark = pytest.mark.component

SEARCH = "/api/v1/cases/search"


async def search(harness: Harness, headers: dict[str, str] | None = None, **params: Any) -> dict[str, Any]:
    response = await harness.client.get(
        SEARCH, params={"reason": "来电人查询进度", **params}, headers=headers or harness.headers()
    )
    assert response.status_code == 200, response.text
    return response.json()


def dispatched(case_id: str) -> CaseDispatched:
    return CaseDispatched(
        case_id=case_id,
        district="500103",
        lead=Assignment(department="civil_affairs", district="500103", role="lead"),
        needs=("temp_assist_major",),
        sla_class="standard",
        decision=Decision(rule_ids=("R-TEST",)),
    )


async def test_a_search_by_name_lists_the_case_masked_and_newest_first(harness: Harness) -> None:
    first = await harness.take(caller={"name": "欧阳明月", "phone": "13800001111"})
    second = await harness.take(caller={"name": "欧阳明日", "phone": "13800002222"})
    found = await search(harness, name="欧阳明")
    assert [r["case_id"] for r in found["results"]] == [second["case_id"], first["case_id"]]
    row = found["results"][0]
    assert row["caller_name"] == "欧***" and row["phone_masked"] == "138****2222"
    assert row["district_name_zh"] == "渝中区" and row["status"] == "received" and row["label_zh"] == "已受理"
    assert "13800002222" not in str(found)


async def test_a_search_by_phone_matches_the_number_exactly_whatever_its_spelling(harness: Harness) -> None:
    taken = await harness.take(caller={"name": "钱七", "phone": "13912345670"})
    await harness.take(caller={"name": "钱七", "phone": "13912345671"})
    found = await search(harness, phone="139 1234 5670")
    assert [r["case_id"] for r in found["results"]] == [taken["case_id"]]


async def test_pages_say_whether_more_follow(harness: Harness) -> None:
    ids = [(await harness.take(caller={"name": "分页测试", "phone": f"1370000000{n}"}))["case_id"] for n in range(3)]
    page1 = await search(harness, name="分页测试", page_size=2)
    page2 = await search(harness, name="分页测试", page_size=2, page=2)
    assert page1["has_more"] is True and page2["has_more"] is False
    assert [r["case_id"] for r in page1["results"] + page2["results"]] == ids[::-1]


async def test_every_search_is_audited_with_hashed_keys_never_the_number(harness: Harness) -> None:
    taken = await harness.take(caller={"name": "孙八", "phone": "13611112222"})
    await search(harness, phone="13611112222", name="孙八", reason="核对来电人")
    [entry] = await harness.db["audit"].find({"action": "search"}).to_list()
    assert entry["reason"] == "核对来电人" and entry["case_ids"] == [taken["case_id"]]
    assert entry["actor"] == "op-1" and "13611112222" not in str(entry) and "孙八" not in str(entry)
    assert len(entry["query"]["phone"]) == 12 and entry["query"]["name"] == "孙*"


async def test_a_district_coordinator_searches_their_own_district_only(harness: Harness) -> None:
    await harness.take(caller={"name": "区县甲", "phone": "13500000001"})  # 500103
    other = await harness.take(
        caller={"name": "区县乙", "phone": "13500000002"}, place={"district": "500106", "address": "沙坪坝 1 号"}
    )
    coordinator = harness.headers(role="coordinator", sub="co-1", district="500106")
    found = await search(harness, headers=coordinator, name="区县")
    assert [r["case_id"] for r in found["results"]] == [other["case_id"]]
    refused = await harness.client.get(SEARCH, params={"reason": "核对", "district": "500103"}, headers=coordinator)
    assert refused.status_code == 403 and "本区县" in refused.json()["message_zh"]
    city = await search(harness, headers=harness.headers(role="coordinator", district="city"), name="区县")
    assert len(city["results"]) == 2
    operator = await search(harness, name="区县")  # operators answer the whole city, as lookups do
    assert len(operator["results"]) == 2


async def test_bad_search_filters_are_named_with_reasons_in_chinese_and_english(harness: Harness) -> None:
    response = await harness.client.get(
        SEARCH,
        params={"reason": "x" * 3, "page_size": 101, "status": "lost", "district": "999999", "case_id": "AB-1"},
        headers=harness.headers(),
    )
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {"page_size", "status", "district", "case_id"}
    assert "没有这种状态" in errors["status"]["reason_zh"] and "unknown status" in errors["status"]["reason_en"]
    assert "区县代码不存在" in errors["district"]["reason_zh"]
    missing = await harness.client.get(SEARCH, headers=harness.headers())
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "reason"


async def test_a_worker_cannot_search(harness: Harness) -> None:
    response = await harness.client.get(
        SEARCH, params={"reason": "核对"}, headers=harness.headers(role="dept_worker", district="500103")
    )
    assert response.status_code == 403


# ---------------------------------------------------------------------------------------- callbacks due


async def due_ids(harness: Harness, **params: Any) -> list[str]:
    response = await harness.client.get("/api/v1/callbacks/due", params=params, headers=harness.headers())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["due_hours"] == 72 and body["rule_id"] == "H-CALLBACK-DUE"
    return [r["case_id"] for r in body["results"]]


async def test_a_resolved_case_is_due_for_its_callback_until_the_callback_is_recorded(harness: Harness) -> None:
    """H-CALLBACK-DUE (P6.2): due 72 hours after the resolution; the oldest resolution first."""
    old = (await harness.take())["case_id"]
    older = (await harness.take())["case_id"]
    recent = (await harness.take())["case_id"]
    now = datetime.now(UTC)
    await harness.deliver(
        CaseResolved(case_id=old, actor="w1", outcome="done", occurred_at=now - timedelta(days=4)),
        CaseResolved(case_id=older, actor="w1", outcome="done", occurred_at=now - timedelta(days=5)),
        CaseResolved(case_id=recent, actor="w1", outcome="done"),
    )
    assert await due_ids(harness) == [older, old]  # the one resolved just now is not due today
    assert await due_ids(harness, upcoming="true") == [older, old, recent]
    rows = (await harness.client.get("/api/v1/callbacks/due", headers=harness.headers())).json()["results"]
    assert rows[0]["overdue"] is True and rows[0]["caller_name"] == "王*"

    recorded = await harness.client.post(
        f"/api/v1/cases/{older}/callbacks", json={"satisfaction": "satisfied"}, headers=harness.headers()
    )
    assert recorded.status_code == 201
    assert await due_ids(harness) == [old]


async def test_a_dissatisfied_callback_takes_the_case_off_the_worklist_until_it_is_resolved_again(
    harness: Harness,
) -> None:
    case_id = (await harness.take())["case_id"]
    resolved_at = datetime.now(UTC) - timedelta(days=4)
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="done", occurred_at=resolved_at))
    assert await due_ids(harness) == [case_id]
    await harness.client.post(
        f"/api/v1/cases/{case_id}/callbacks", json={"satisfaction": "dissatisfied"}, headers=harness.headers()
    )
    assert await due_ids(harness, upcoming="true") == []
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="again"))
    assert await due_ids(harness, upcoming="true") == [case_id]


# ---------------------------------------------------------------------------------------- acceptance slip


async def test_the_acceptance_slip_prints_the_call_with_the_caller_masked_and_the_lead_department(
    harness: Harness,
) -> None:
    taken = await harness.take(
        caller={"name": "李四", "phone": "13912345678", "id_card": "11010519491231002X", "consents_to_texts": True},
        place={"district": "500103", "township": "解放碑街道", "address": "民族路地下通道"},
        needs=["homeless_cold"],
        description="一名老人在地下通道露宿，天气很冷",
        attributes={"person_condition": "conscious"},
    )
    case_id = taken["case_id"]
    url = f"/api/v1/cases/{case_id}/slip"
    before = await harness.client.get(url, headers=harness.headers())
    assert before.status_code == 200 and before.headers["content-type"].startswith("text/html")
    assert "尚未派单" in before.text
    await harness.deliver(dispatched(case_id))
    slip = (await harness.client.get(url, headers=harness.headers())).text
    shown_parts = (case_id, "受理单", "李*", "139****5678", "解放碑街道", "民族路地下通道", "渝中区民政部门")
    for shown in (*shown_parts, "window.print()"):
        assert shown in slip, shown
    assert "流浪乞讨人员寒冷救助" in slip and "冻饿风险" in slip  # the need and why it is an emergency
    assert "同意" in slip and "电话" in slip and "op-1" in slip
    assert "13912345678" not in slip and "11010519491231002X" not in slip and "李四" not in slip
    audits = await harness.db["audit"].find({"action": "print_slip"}).to_list()
    assert [a["case_ids"] for a in audits] == [[case_id], [case_id]]  # each print is a read of the case


async def test_a_slip_of_an_unknown_case_is_not_found(harness: Harness) -> None:
    response = await harness.client.get("/api/v1/cases/CQ-20200101-000001/slip", headers=harness.headers())
    assert response.status_code == 404 and "案件不存在" in response.json()["message_zh"]


# ---------------------------------------------------------------------------------------- consent to texts


async def test_the_callers_consent_to_texts_travels_in_the_help_request_and_the_summary(harness: Harness) -> None:
    agreed = await harness.take(caller={"name": "周九", "phone": "13712340000", "consents_to_texts": True})
    silent = await harness.take()
    assert agreed["recorded"]["consents_to_texts"] is True and silent["recorded"]["consents_to_texts"] is False
    published = {b["case_id"]: b for b in harness.published if b["type"] == "hotline.help_requested"}
    assert published[agreed["case_id"]]["caller"]["consents_to_texts"] is True
    assert published[silent["case_id"]]["caller"]["consents_to_texts"] is False


async def test_consent_must_be_a_yes_or_no(harness: Harness) -> None:
    body = call(caller={"name": "周九", "phone": "13712340000", "consents_to_texts": "maybe"})
    response = await harness.client.post("/api/v1/help-requests", json=body, headers=harness.headers())
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "caller.consents_to_texts"
