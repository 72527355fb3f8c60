"""Intake through the real app and store, Kafka replaced by TestKafkaBroker."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from tests.hotline.conftest import Harness, call

pytestmark = pytest.mark.component


async def test_a_call_gets_a_case_number_at_once_and_is_published(harness: Harness) -> None:
    accepted = await harness.take(
        caller={"name": "王五", "phone": "138-1234-5678", "id_card": "11010519491231002x"},
        needs=["temp_assist_unemployed"],
        attributes={"unemployment_insured": "no"},
        months_without_income=4,
    )
    assert accepted["case_id"].startswith("CQ-") and accepted["published"] is True
    [event] = [b for b in harness.published if b["case_id"] == accepted["case_id"]]
    assert event["type"] == "hotline.help_requested" and event["operator_id"] == "op-1"
    assert event["caller"]["phone"] == "13812345678" and event["caller"]["id_card"] == "11010519491231002X"
    assert event["months_without_income"] == 4
    assert event["attributes"] == {"months_without_income": 4.0, "unemployment_insured": "no"}
    await harness.hotline.publisher.flush()
    assert await harness.hotline.outbox.pending_count() == 0  # removed once Kafka acknowledged it


async def test_case_numbers_are_unique_and_sortable(harness: Harness) -> None:
    ids = [(await harness.take())["case_id"] for _ in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def test_p2_2_homeless_in_the_cold_is_flagged_emergency_with_its_reasons(harness: Harness) -> None:
    accepted = await harness.take(needs=["homeless_cold"], description="桥洞下有人露宿，已经冻僵了")
    assert accepted["emergency"] is True
    assert any(r.startswith("T-CATALOGUE") for r in accepted["emergency_reasons"])
    assert any(r.startswith("T-COLD") for r in accepted["emergency_reasons"])
    [event] = [b for b in harness.published if b["case_id"] == accepted["case_id"]]
    assert event["emergency"] is True and event["urgency"] == "emergency"


async def test_bad_input_is_refused_naming_each_field_in_chinese_and_english(harness: Harness) -> None:
    body = call(
        caller={"name": "王五", "phone": "12345", "id_card": "110105194912310021", "hukou_district": "x"},
        place={"district": "999999"},
        needs=["no_such_service"],
        description="长" * 4001,
        household_status="rich",
    )
    response = await harness.client.post("/api/v1/help-requests", json=body, headers=harness.headers())
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) >= {
        "caller.phone",
        "caller.id_card",
        "caller.hukou_district",
        "place.district",
        "needs",
        "description",
        "household_status",
    }
    assert "校验位" in errors["caller.id_card"]["reason_zh"] and "check digit" in errors["caller.id_card"]["reason_en"]
    assert all(e["reason_zh"] and e["reason_en"] for e in errors.values())
    assert harness.published == [] and await harness.hotline.outbox.pending_count() == 0
    assert await harness.db["intakes"].count_documents({}) == 0


async def test_attribute_errors_name_the_attribute(harness: Harness) -> None:
    body = call(needs=["temp_assist_unemployed"], attributes={"unemployment_insured": "maybe", "colour": "red"})
    response = await harness.client.post("/api/v1/help-requests", json=body, headers=harness.headers())
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert fields == {"attributes.unemployment_insured", "attributes.colour", "attributes.months_without_income"}
    assert harness.published == []


async def test_intake_needs_an_operator_token(harness: Harness) -> None:
    assert (await harness.client.post("/api/v1/help-requests", json=call())).status_code == 401
    response = await harness.client.post("/api/v1/help-requests", json=call(), headers=harness.headers("dept_worker"))
    assert response.status_code == 403


async def test_repeat_caller_sees_open_cases_of_same_phone_id_card_or_household(harness: Harness) -> None:
    first = await harness.take(caller={"name": "王五", "phone": "13812345678", "id_card": "11010519491231002X"})
    same_home = await harness.take(
        caller={"name": "王妻", "phone": "13900000000"}, place={"district": "500103", "address": "民族路8号"}
    )
    assert [(d["case_id"], d["matched_on"]) for d in same_home["possible_duplicates"]] == [
        (first["case_id"], ["household"])
    ]
    assert same_home["possible_duplicates"][0]["caller_name"] == "王*"
    response = await harness.client.post(
        "/api/v1/help-requests/matches",
        headers=harness.headers(),
        json={"id_card": "11010519491231002x", "reason": "来电核对"},
    )
    assert [m["case_id"] for m in response.json()] == [first["case_id"]]
    audit = await harness.db["audit"].find_one({"action": "duplicate_check", "reason": "来电核对"})
    assert audit and audit["actor"] == "op-1" and audit["case_ids"] == [first["case_id"]]
    assert "11010519491231002X" not in str(audit)


async def test_lookup_by_phone_is_for_operators_only_and_audited(harness: Harness) -> None:
    taken = await harness.take()
    response = await harness.client.get(
        "/api/v1/cases", params={"phone": "138 1234 5678", "reason": "来电人查询进度"}, headers=harness.headers()
    )
    assert [c["case_id"] for c in response.json()] == [taken["case_id"]]
    forbidden = await harness.client.get(
        "/api/v1/cases", params={"phone": "13812345678", "reason": "x查询"}, headers=harness.headers("dept_worker")
    )
    assert forbidden.status_code == 403
    no_reason = await harness.client.get("/api/v1/cases", params={"phone": "13812345678"}, headers=harness.headers())
    assert no_reason.status_code == 422 and no_reason.json()["errors"][0]["field"] == "reason"
    audit = await harness.db["audit"].find_one({"action": "lookup_by_phone"})
    assert audit and audit["reason"] == "来电人查询进度" and audit["actor"] == "op-1"
    assert "13812345678" not in str(audit)


async def test_reading_a_case_with_personal_data_leaves_an_audit_record(harness: Harness) -> None:
    taken = await harness.take()
    response = await harness.client.get(
        f"/api/v1/cases/{taken['case_id']}", params={"reason": "回访前核对"}, headers=harness.headers(sub="op-9")
    )
    assert response.status_code == 200 and response.json()["request"]["caller"]["phone"] == "13812345678"
    trail = await harness.client.get(
        f"/api/v1/cases/{taken['case_id']}/audit", headers=harness.headers("coordinator", sub="co-1")
    )
    assert [(a["actor"], a["reason"], a["action"]) for a in trail.json()] == [("op-9", "回访前核对", "read_case")]
    missing = await harness.client.get(
        "/api/v1/cases/CQ-20260101-999999", params={"reason": "核对"}, headers=harness.headers()
    )
    assert missing.status_code == 404 and missing.json()["message_zh"].startswith("案件不存在")


async def test_warm_transfer_is_recorded_with_its_time(harness: Harness) -> None:
    taken = await harness.take(needs=["other"], description="老人在家晕倒了")
    assert taken["suggested_transfer"] == "120"
    received = datetime.fromisoformat(taken["received_at"])
    at = (received.replace(microsecond=0) + timedelta(seconds=1)).astimezone(timezone(timedelta(hours=8))).isoformat()
    response = await harness.client.post(
        f"/api/v1/cases/{taken['case_id']}/warm-transfers", json={"to": "120", "at": at}, headers=harness.headers()
    )
    assert response.status_code == 201
    status = (await harness.client.get(f"/api/v1/cases/{taken['case_id']}/status", headers=harness.headers())).json()
    assert status["warm_transfers"] == [{"to": "120", "at": at}]
    assert "hotline.warm_transfer_recorded" in harness.published_types(taken["case_id"])
    bad = await harness.client.post(
        f"/api/v1/cases/{taken['case_id']}/warm-transfers", json={"to": "911"}, headers=harness.headers()
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "to"


async def test_the_operator_page_is_served(harness: Harness) -> None:
    response = await harness.client.get("/")
    assert response.status_code == 200 and "热线受理" in response.text


async def test_every_field_error_comes_in_one_reply_attributes_included(harness: Harness) -> None:
    body = call(caller={"name": "", "phone": ""}, needs=["temp_assist_unemployed"])
    response = await harness.client.post("/api/v1/help-requests", json=body, headers=harness.headers())
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert set(errors) == {"caller.name", "caller.phone", "attributes.months_without_income"}
    assert "连续无收入月数" in errors["attributes.months_without_income"]["reason_zh"]
    assert "required" in errors["attributes.months_without_income"]["reason_en"]


async def test_the_answer_reads_back_what_was_recorded_and_why_it_is_an_emergency(harness: Harness) -> None:
    accepted = await harness.take(
        caller={"name": "李四", "phone": "139 1234 5678"},
        needs=["homeless_cold"],
        description="老人在地下通道露宿",
    )
    recorded = accepted["recorded"]
    assert (recorded["caller_name"], recorded["phone_masked"]) == ("李四", "139****5678")
    assert recorded["place"] == {"district": "500103", "township": "解放碑街道", "address": "民族路 8 号"}
    assert recorded["needs"] == ["homeless_cold"] and recorded["urgency"] == "emergency"
    assert "13912345678" not in str(recorded)
    assert [r["rule_id"] for r in accepted["reasons"]] == ["T-CATALOGUE", "T-COLD"]
    assert all(r["text_zh"] and r["text_en"] for r in accepted["reasons"])


async def test_transfer_and_follow_up_times_outside_the_case_are_refused_by_field(harness: Harness) -> None:
    """A warm transfer or a follow-up call cannot be from year 73, from next century, or before the
    case was received: 422 naming the field, and nothing recorded."""
    taken = await harness.take(needs=["other"], description="老人在家晕倒了")
    case = taken["case_id"]
    received = datetime.fromisoformat(taken["received_at"])
    before = (received - timedelta(minutes=5)).isoformat()
    for path, field, value in [
        ("warm-transfers", "at", "0073-01-01T08:00:00+08:00"),
        ("warm-transfers", "at", "2122-01-01T08:00:00+08:00"),
        ("warm-transfers", "at", before),
        ("follow-ups", "received_at", "0122-06-01T08:00:00+08:00"),
        ("follow-ups", "received_at", before),
    ]:
        body = {"to": "120", "at": value} if field == "at" else {"note": "又打来了", "received_at": value}
        response = await harness.client.post(f"/api/v1/cases/{case}/{path}", json=body, headers=harness.headers())
        assert response.status_code == 422, (path, value, response.text)
        (error,) = response.json()["errors"]
        assert error["field"] == field and error["reason_zh"] and error["reason_en"], error
    status = (await harness.client.get(f"/api/v1/cases/{case}/status", headers=harness.headers())).json()
    assert status["warm_transfers"] == [] and status["follow_ups"] == 0
    late = await harness.client.post(
        "/api/v1/help-requests",
        json=call(warm_transfer={"to": "120", "at": "0073-01-01T00:00:00Z"}),
        headers=harness.headers(),
    )
    assert late.status_code == 422 and late.json()["errors"][0]["field"] == "warm_transfer.at"


async def test_the_outbox_entries_of_calls_acknowledged_together_are_removed_in_one_command(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Long enough for every call's acknowledgement to come within it, on a slow machine too.
    monkeypatch.setattr("services.hotline.outbox.REMOVAL_LINGER_S", 2.0)
    removals: list[tuple[str, ...]] = []
    remove = harness.hotline.outbox.remove

    async def counted(*ids: str) -> None:
        removals.append(ids)
        await remove(*ids)

    monkeypatch.setattr(harness.hotline.outbox, "remove", counted)
    taken = await asyncio.gather(*(harness.take() for _ in range(6)))
    assert all(t["published"] is True for t in taken)
    assert await harness.hotline.outbox.pending_count() == 6  # acknowledged, not yet removed
    await harness.hotline.publisher.flush()
    assert len(removals) == 1 and len(removals[0]) == 6, removals
    assert await harness.hotline.outbox.pending_count() == 0
