"""Coordinator and registry API against the real store: CSV import with a validation report (P2.3),
opening and executing subsidy runs (P1.3, P2.1) where a double click pays nobody twice, and a P5.1
approval entering the registry so the month's first-payment run pays the new recipient's allowance that
month (P2.1), a pre-holiday run due before the festival, and the funding source on every ledger entry (P1.3)."""

from __future__ import annotations

import pytest

from tests.relief.conftest import case_id, grant_events, help_requested, id_card, token
from tests.support.events import dispatched
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration

CSV = (
    "recipient_id,name,id_card,district,area,categories,approved_on,ended_on\n"
    f"R1,张三,{id_card(11)},500103,urban,dibao,2020-05-01,\n"
    f"R2,李四,{id_card(12)},500103,rural,tekun orphan,2020-05-01,\n"
    f"R3,王五,{id_card(13)},500103,urban,edge,2020-05-01,\n"
    f"R4,赵六,{id_card(14)},500106,urban,dibao,2020-05-01,\n"
    f"R5,钱七,12345,500103,urban,dibao,2020-05-01,\n"
)


async def test_p23_registry_csv_import_reports_bad_rows_and_keeps_good_ones(relief_app):
    """P2.3: a district officer's import keeps good rows of their district and names every bad row."""
    app, client = relief_app
    officer = token(app, "officer-a")
    r = await client.post(
        "/api/v1/registry/import", headers=officer, files={"file": ("registry.csv", CSV.encode("utf-8"), "text/csv")}
    )
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["rows"] == 5 and report["accepted"] == 3
    bad = {b["recipient_id"]: b for b in report["rejected"]}
    assert bad["R5"]["line"] == 6 and bad["R5"]["errors"][0]["field"] == "id_card"
    assert bad["R4"]["line"] == 5 and bad["R4"]["errors"][0]["reason_en"] == "not in your district 500103"
    record = (await client.get("/api/v1/registry/R2", headers=officer)).json()
    assert record["categories"] == ["orphan", "tekun"] and id_card(12) not in str(record)
    missing = await client.post(
        "/api/v1/registry/import", headers=officer, files={"file": ("x.csv", b"recipient_id,name\nR1,x\n", "text/csv")}
    )
    assert missing.status_code == 422 and "missing columns" in missing.json()["message_en"]


async def test_p21_run_opened_twice_and_executed_twice_pays_each_recipient_once(relief_app):
    """P2.1 holiday run: opening the same run again returns it; executing twice pays nobody twice."""
    app, client = relief_app
    await client.post(
        "/api/v1/registry/import",
        headers=token(app, "admin", role="admin", district=None),
        files={"file": ("registry.csv", CSV.encode("utf-8"), "text/csv")},
    )
    coordinator = token(app, "coord-1", role="coordinator", district="500103")
    body = {
        "kind": "holiday",
        "month": "2021-02",
        "label": "spring",
        "amounts": {"dibao": "200.00", "tekun": "300", "orphan": "500"},
    }
    first = await client.post("/api/v1/runs", json=body, headers=coordinator)
    assert first.status_code == 201 and first.json()["_id"] == "P2.1-2021-02-spring-500103"
    assert first.json()["due_on"] == "2021-02-28"
    again = await client.post("/api/v1/runs", json=body, headers=coordinator)
    assert again.status_code == 200  # a double click opens nothing new
    changed = await client.post("/api/v1/runs", json=body | {"amounts": {"dibao": "1.00"}}, headers=coordinator)
    assert changed.status_code == 409
    wrong = await client.post("/api/v1/runs", json=body | {"amounts": {"youfu": "1.00"}}, headers=coordinator)
    assert wrong.status_code == 422 and wrong.json()["field"] == "amounts"  # P2.1 does not cover youfu

    run_id = first.json()["_id"]
    for _ in range(2):
        assert (await client.post(f"/api/v1/runs/{run_id}/execute", headers=coordinator)).status_code == 202

    async def completed():
        run = (await client.get(f"/api/v1/runs/{run_id}", headers=coordinator)).json()
        return run if run["status"] == "completed" and len(run["executions"]) == 2 else None

    run = await eventually(completed, timeout=30, what="both executions to complete")
    assert run["ledger_count"] == 2 and run["paid_fen"] == 70000  # R1 dibao 200 + R2 orphan 500; R3 edge unpaid
    ledger = (await client.get("/api/v1/recipients/R2/ledger", headers=coordinator)).json()
    assert [(e["amount"], e["rule_id"]) for e in ledger["entries"]] == [("500.00", "P2.1")]


async def test_p2_1_approved_dibao_enters_the_registry_and_its_allowance_is_paid_that_month(
    relief_app, kafka_bootstrap
):
    """P5.1 fast track -> approval (uncontested: no appraisal) -> registry (P2.3) -> the allowance itself
    paid by this month's first-payment run (P2.1: approved and paid in the same month); a holiday subsidy
    paid in the month does not count as that payment."""
    app, client = relief_app
    relief = app.state.runtime.service
    case = case_id()
    await relief.on_help_requested(
        help_requested(
            case, "dibao_application", id_card=id_card(77), attributes={"income_fell_due_to_epidemic": "yes"}
        )
    )
    await relief.on_dispatched(dispatched(case, needs=("dibao_application",)))
    officer = token(app, "officer-a")
    doc = (await client.get(f"/api/v1/entitlements/{case}:P5.1", headers=officer)).json()
    assert doc["sla_class"] == "dibao_fast_track" and "public_appraisal" not in doc["review_steps"]
    r = await client.post(f"/api/v1/entitlements/{case}:P5.1/approve", json={"contested": False}, headers=officer)
    assert r.status_code == 200 and r.json()["status"] == "approved"
    assert r.json()["decisions"][-1]["steps"] == ["application", "household_check", "approval"]
    recipient = doc["recipient_id"]
    record = (await client.get(f"/api/v1/registry/{recipient}", headers=officer)).json()
    assert record["categories"] == ["dibao"] and record["approved_on"] == "2021-03-20"

    coordinator = token(app, "coord-1", role="coordinator", district="500103")

    async def paid():
        return (await client.get(f"/api/v1/recipients/{recipient}/ledger", headers=officer)).json()["entries"]

    holiday = (
        await client.post(
            "/api/v1/runs",
            json={"kind": "holiday", "month": "2021-03", "amounts": {"dibao": "50"}},
            headers=coordinator,
        )
    ).json()
    await client.post(f"/api/v1/runs/{holiday['_id']}/execute", headers=coordinator)
    [subsidy] = await eventually(paid, timeout=30, what="the holiday subsidy to be paid")
    assert subsidy["run_id"] == holiday["_id"] and subsidy["funding_source"] == "city_district_finance"
    assert (await relief.store.get_entitlement(f"{case}:P5.1")).paid_periods == []  # a subsidy, not the allowance

    run = (
        await client.post(
            "/api/v1/runs",
            json={"kind": "first_payment", "month": "2021-03", "amounts": {"dibao": "200"}},
            headers=coordinator,
        )
    ).json()
    assert run["_id"] == "P2.1-first-payment-2021-03-main-500103" and run["due_on"] == "2021-03-31"
    await client.post(f"/api/v1/runs/{run['_id']}/execute", headers=coordinator)

    async def allowance():
        return [e for e in await paid() if e["run_id"] == run["_id"]] or None

    [entry] = await eventually(allowance, timeout=30, what="the new recipient's allowance to be paid")
    assert entry["period"] == "2021-03" and entry["amount"] == "200.00"

    # The P5.1 grant is paid for its approval month: notify's same-month payment clock (P2.1) can close.
    async def grant_paid():
        grant = (await client.get(f"/api/v1/entitlements/{case}:P5.1", headers=officer)).json()
        return grant if "2021-03" in grant.get("paid_periods", []) else None

    grant = await eventually(grant_paid, timeout=30, what="the P5.1 grant to be marked paid by the run")
    assert grant["decisions"][-1]["action"] == "paid_by_run" and grant["payments"] == 1
    events = await grant_events(kafka_bootstrap, case, 3)  # proposed, approved, paid (by the outbox relay)
    paid_event = next(e for e in events if e["type"] == "grant.paid")
    assert paid_event["grant_id"] == f"{case}:P5.1" and paid_event["period"] == "2021-03"
    assert paid_event["payment_reference"] == run["_id"] and paid_event["amount_yuan"] == "200.00"

    # A second execution of the run pays nobody twice and reports the grant paid only once.
    await client.post(f"/api/v1/runs/{run['_id']}/execute", headers=coordinator)

    async def executed_twice():
        done = (await client.get(f"/api/v1/runs/{run['_id']}", headers=coordinator)).json()
        return done["status"] == "completed" and len(done["executions"]) == 2

    await eventually(executed_twice, timeout=30, what="the second execution")
    assert sorted(e["idempotency_key"] for e in await paid()) == sorted(
        [subsidy["idempotency_key"], entry["idempotency_key"]]
    )  # the holiday subsidy once, the allowance once
    assert (await relief.store.get_entitlement(f"{case}:P5.1")).payments == 1


async def test_p2_1_pre_holiday_run_is_due_the_day_before_the_festival_the_coordinator_gives(relief_app):
    """P2.1: February's dibao/tekun allowance reaches recipients before the Spring Festival: the coordinator
    gives the festival day (2026: 17 February) and the run is due the day before; only dibao/tekun."""
    app, client = relief_app
    coordinator = token(app, "coord-1", role="coordinator", district="500103")
    body = {"kind": "pre_holiday", "month": "2026-02", "label": "spring", "amounts": {"dibao": "650", "tekun": "900"}}
    missing = await client.post("/api/v1/runs", json=body, headers=coordinator)
    assert missing.status_code == 422 and missing.json()["field"] == "pay_before"
    assert missing.json()["message_zh"].startswith("节前发放须填写节日日期")
    outside = await client.post("/api/v1/runs", json=body | {"pay_before": "2026-03-03"}, headers=coordinator)
    assert outside.status_code == 422 and outside.json()["field"] == "pay_before"
    orphans = await client.post(
        "/api/v1/runs", json=body | {"pay_before": "2026-02-17", "amounts": {"orphan": "1"}}, headers=coordinator
    )
    assert orphans.status_code == 422 and orphans.json()["field"] == "amounts"
    opened = await client.post("/api/v1/runs", json=body | {"pay_before": "2026-02-17"}, headers=coordinator)
    assert opened.status_code == 201, opened.text
    run = opened.json()
    assert run["_id"] == "P2.1-pre-holiday-2026-02-spring-500103"
    assert run["pay_before"] == "2026-02-17" and run["due_on"] == "2026-02-16"
    moved = await client.post("/api/v1/runs", json=body | {"pay_before": "2026-02-18"}, headers=coordinator)
    assert moved.status_code == 409  # the same run with another festival day is another decision
    holiday = await client.post(
        "/api/v1/runs",
        json={"kind": "holiday", "month": "2026-02", "amounts": {"dibao": "1"}, "pay_before": "2026-02-17"},
        headers=coordinator,
    )
    assert holiday.status_code == 422 and holiday.json()["field"] == "pay_before"


async def test_p1_3_price_linkage_ledger_records_who_funds_each_payment(relief_app):
    """P1.3: dibao/tekun/优抚 price subsidies are funded by city and district finance; unemployment-insurance
    and unemployment-subsidy recipients' from the unemployment insurance fund; each ledger entry says so."""
    app, client = relief_app
    rows = (
        "recipient_id,name,id_card,district,area,categories,approved_on,ended_on\n"
        f"F1,甲,{id_card(31)},500103,urban,dibao,2020-05-01,\n"
        f"F2,乙,{id_card(32)},500103,urban,youfu,2020-05-01,\n"
        f"F3,丙,{id_card(33)},500103,urban,unemployment_benefit,2020-05-01,\n"
    )
    officer = token(app, "officer-a")
    r = await client.post(
        "/api/v1/registry/import", headers=officer, files={"file": ("r.csv", rows.encode(), "text/csv")}
    )
    assert r.json()["accepted"] == 3
    coordinator = token(app, "coord-1", role="coordinator", district="500103")
    amounts = {"dibao": "60", "youfu": "60", "unemployment_benefit": "60"}
    run = (
        await client.post(
            "/api/v1/runs",
            json={"kind": "price_linkage", "month": "2021-02", "label": "pork", "amounts": amounts},
            headers=coordinator,
        )
    ).json()
    await client.post(f"/api/v1/runs/{run['_id']}/execute", headers=coordinator)

    async def funded():
        found = {}
        for rid in ("F1", "F2", "F3"):
            entries = (await client.get(f"/api/v1/recipients/{rid}/ledger", headers=coordinator)).json()["entries"]
            found.update({e["recipient_id"]: e["funding_source"] for e in entries if e["run_id"] == run["_id"]})
        return found if len(found) == 3 else None

    assert await eventually(funded, timeout=30, what="the three price subsidies") == {
        "F1": "city_district_finance",
        "F2": "city_district_finance",
        "F3": "unemployment_insurance_fund",
    }
