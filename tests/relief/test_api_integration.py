"""The relief officer API against the real store and Kafka: four eyes (P5.2c), a payment recorded once
under concurrent identical requests (P6.1), discharge stopping P5.2a, district scoping, bilingual 422s."""

from __future__ import annotations

import asyncio

import pytest

from contracts.events.relief import GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC
from tests.relief.conftest import case_id, grant_events, help_requested, id_card, token
from tests.support.events import dispatched
from tests.support.kafka import create_topics

pytestmark = pytest.mark.integration


async def open_case(app, needs, **kw):
    case = case_id()
    relief = app.state.runtime.service
    await relief.on_help_requested(help_requested(case, *needs, **kw))
    await relief.on_dispatched(dispatched(case, needs=tuple(needs), district=kw.get("district", "500103")))
    return case


async def test_p52c_four_eyes_above_threshold_the_proposer_cannot_approve(relief_app, kafka_bootstrap):
    """P5.2c: above the threshold (3000 here) a second officer approves; the proposer is refused."""
    await create_topics(kafka_bootstrap, GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC)
    app, client = relief_app
    case = await open_case(app, ("temp_assist_major",), hukou_district="500101")
    eid = f"{case}:P5.2c"
    a, b = token(app, "officer-a", name="经办 甲"), token(app, "officer-b")  # b's token carries no name

    r = await client.post(
        f"/api/v1/entitlements/{eid}/approve", json={"amount_yuan": "8000.00", "note": "重病"}, headers=a
    )
    assert r.status_code == 200 and r.json()["status"] == "pending_approval"
    assert r.json()["signed_by_shown"] == ["经办 甲（officer-a）"]
    r = await client.post(f"/api/v1/entitlements/{eid}/approve", json={}, headers=a)
    assert r.status_code == 403 and r.json()["code"] == "four_eyes"
    assert "需另一名经办人复核" in r.json()["message_zh"] and "second officer" in r.json()["message_en"]
    other_district = token(app, "officer-c", district="500106")
    assert (
        await client.post(f"/api/v1/entitlements/{eid}/approve", json={}, headers=other_district)
    ).status_code == 403
    r = await client.post(f"/api/v1/entitlements/{eid}/approve", json={"note": "复核同意"}, headers=b)
    assert (
        r.status_code == 200
        and r.json()["status"] == "approved"
        and r.json()["signed_by"] == ["officer-a", "officer-b"]
        and r.json()["signed_by_shown"] == ["经办 甲（officer-a）", "officer-b"]
    )
    decisions = r.json()["decisions"]
    assert [d.get("shown_as") for d in decisions] == [None, "经办 甲（officer-a）", "officer-b"]
    assert [d["action"] for d in decisions] == ["proposed", "signed_pending_second_approval", "approved"]
    assert all(d["rule_id"] == "P5.2c" and "facts" in d and d["at"] for d in decisions)  # P6.3

    r = await client.post(
        f"/api/v1/entitlements/{eid}/payments", json={"period": "once", "payment_reference": "BANK-1"}, headers=b
    )
    assert r.status_code == 201 and r.json()["entry"]["amount"] == "8000.00"
    assert (await client.get(f"/api/v1/entitlements/{eid}", headers=a)).json()["status"] == "paid"

    events = await grant_events(kafka_bootstrap, case, 4)
    assert [e["type"] for e in events] == ["grant.proposed", "grant.proposed", "grant.approved", "grant.paid"]
    assert events[1]["needs_second_approval"] is True and events[2]["approved_by"] == ["officer-a", "officer-b"]
    [notice] = await grant_events(kafka_bootstrap, case, 1, topic=HUKOU_NOTICE_TOPIC)  # P5.2d
    assert notice["paying_district"] == "500103" and notice["hukou_district"] == "500101"


async def test_concurrent_identical_payment_requests_make_exactly_one_ledger_entry(relief_app, kafka_bootstrap):
    """P6.1: N identical payment requests at once (a double click, retries) -> one ledger entry, one event."""
    app, client = relief_app
    case = await open_case(
        app,
        ("temp_assist_unemployed",),
        months_without_income=3,
        household_status="none",
        special_groups=("unemployed_uninsured",),
        id_card=id_card(1),
    )
    eid = f"{case}:P5.2b"
    officer = token(app, "officer-a")
    r = await client.post(f"/api/v1/entitlements/{eid}/approve", json={"amount_yuan": "1240.01"}, headers=officer)
    assert (
        r.status_code == 422 and r.json()["field"] == "amount_yuan"
    )  # cap: 2 x 620 (EXAMPLE urban standard on 2021-02-15)
    r = await client.post(f"/api/v1/entitlements/{eid}/approve", json={"amount_yuan": "1240.00"}, headers=officer)
    assert r.status_code == 200

    async def pay(i: int):
        return await client.post(
            f"/api/v1/entitlements/{eid}/payments",
            json={"period": "once", "payment_reference": f"REF-{i}"},
            headers=officer,
        )

    responses = await asyncio.gather(*(pay(i) for i in range(12)))
    assert sorted(r.status_code for r in responses) == [200] * 11 + [201]
    assert len({r.json()["entry"]["payment_reference"] for r in responses}) == 1
    ledger = (await client.get(f"/api/v1/cases/{case}/ledger", headers=officer)).json()
    assert len(ledger["entries"]) == 1 and ledger["total_yuan"] == "1240.00"
    assert await app.state.runtime.db["ledger"].count_documents({"case_id": case}) == 1
    by_person = (await client.post("/api/v1/ledger/by-id-card", json={"id_card": id_card(1)}, headers=officer)).json()
    assert [e["case_id"] for e in by_person["entries"]] == [case]
    # Reads of personal data leave an insert-only audit record: who, what, which; never the ID-card number.
    trail = await app.state.runtime.db["audit"].find({"action": "ledger_read", "actor": "officer-a"}).to_list(None)
    assert {(a["reason"], a["rows"]) for a in trail} >= {("case", 1), ("id_card", 1)}
    assert id_card(1) not in str(trail)
    events = await grant_events(kafka_bootstrap, case, 3)
    assert [e["type"] for e in events].count("grant.paid") == 1


async def test_p52a_monthly_until_discharge_mid_month(relief_app):
    """P5.2a: monthly 2 x standard from confirmation; discharge mid-month keeps that month (full_month
    policy) and stops the next with GrantStopped."""
    app, client = relief_app
    case = await open_case(app, ("temp_assist_epidemic",), household_status="dibao")
    eid = f"{case}:P5.2a"
    officer = token(app, "officer-a")
    r = await client.post(f"/api/v1/entitlements/{eid}/approve", json={"confirmed_on": "2021-02-10"}, headers=officer)
    assert r.status_code == 200 and r.json()["amount"] == "1240.00"  # 2 x 620 (EXAMPLE standard on 2021-02-15)
    for period in ("2021-02", "2021-03"):
        r = await client.post(
            f"/api/v1/entitlements/{eid}/payments",
            json={"period": period, "payment_reference": f"B-{period}"},
            headers=officer,
        )
        assert r.status_code == 201, r.text
    r = await client.post(
        f"/api/v1/entitlements/{eid}/discharge", json={"discharged_on": "2021-03-05"}, headers=officer
    )
    assert r.status_code == 200 and r.json()["status"] == "stopped" and r.json()["end_on"] == "2021-03-05"
    r = await client.post(
        f"/api/v1/entitlements/{eid}/payments", json={"period": "2021-04", "payment_reference": "B-04"}, headers=officer
    )
    assert r.status_code == 409 and r.json()["code"] == "period_not_payable"
    ledger = (await client.get(f"/api/v1/cases/{case}/ledger", headers=officer)).json()
    assert [e["period"] for e in ledger["entries"]] == ["2021-02", "2021-03"] and ledger["total_yuan"] == "2480.00"


async def test_bad_input_is_refused_in_chinese_and_english_naming_the_field(relief_app):
    app, client = relief_app
    officer = token(app, "officer-a")
    r = await client.post(
        "/api/v1/entitlements/x/payments", json={"period": "2021/02", "payment_reference": "r"}, headers=officer
    )
    assert r.status_code == 422
    [err] = r.json()["errors"]
    assert err["field"] == "period" and err["reason_zh"].startswith("期间") and "YYYY-MM" in err["reason_en"]
    assert (await client.get("/api/v1/entitlements", headers=token(app, "op", role="operator"))).status_code == 403
    assert (await client.get("/api/v1/entitlements")).status_code == 401
    page = await client.get("/")
    assert page.status_code == 200 and "临时救助" in page.text and "English" in page.text


async def test_admin_adds_a_standard_from_a_date_and_new_cases_use_it(relief_app):
    """Standards are dated data: an admin adds one; a case reported after its date uses it."""
    app, client = relief_app
    admin = token(app, "admin-1", role="admin", district=None)
    body = {
        "district": "500103",
        "effective_from": "2021-02-01",
        "urban": "700.00",
        "rural": "560.00",
        "source": "test",
    }
    assert (await client.post("/api/v1/admin/standards", json=body, headers=token(app, "o"))).status_code == 403
    assert (await client.post("/api/v1/admin/standards", json=body, headers=admin)).status_code == 201
    assert (await client.post("/api/v1/admin/standards", json=body, headers=admin)).status_code == 409
    bad = await client.post("/api/v1/admin/standards", json=body | {"district": "999999"}, headers=admin)
    assert bad.status_code == 422 and bad.json()["errors"][0]["reason_zh"].startswith("未知的区县代码")
    r = await client.get("/api/v1/standards?district=500103&on=2021-02-15", headers=token(app, "o"))
    assert r.json()["urban"] == "700.00"
    case = await open_case(app, ("temp_assist_epidemic",), household_status="tekun")
    doc = (await client.get(f"/api/v1/entitlements/{case}:P5.2a", headers=token(app, "o"))).json()
    assert doc["amount"] == "1400.00"


async def test_p52a_due_months_and_discharge_before_approval(relief_app, kafka_bootstrap):
    """P5.2a: approved grant lists the unpaid months due (confirmation month to today); a discharge
    recorded before approval leaves it open, and its approval stops it at once (GrantStopped)."""
    app, client = relief_app
    officer = token(app, "officer-a")
    case = await open_case(app, ("temp_assist_epidemic",), household_status="tekun")
    eid = f"{case}:P5.2a"
    await client.post(f"/api/v1/entitlements/{eid}/approve", json={"confirmed_on": "2021-01-25"}, headers=officer)
    await client.post(
        f"/api/v1/entitlements/{eid}/payments", json={"period": "2021-01", "payment_reference": "J"}, headers=officer
    )
    doc = (await client.get(f"/api/v1/entitlements/{eid}", headers=officer)).json()
    assert doc["due_periods"] == [
        {"period": "2021-02", "amount": "1240.00"},
        {"period": "2021-03", "amount": "1240.00"},
    ]

    other = await open_case(app, ("temp_assist_epidemic",), household_status="dibao")
    oid = f"{other}:P5.2a"
    r = await client.post(
        f"/api/v1/entitlements/{oid}/discharge", json={"discharged_on": "2021-02-20"}, headers=officer
    )
    assert r.status_code == 200 and r.json()["status"] == "proposed" and r.json()["end_on"] == "2021-02-20"
    r = await client.post(f"/api/v1/entitlements/{oid}/approve", json={}, headers=officer)
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    doc = (await client.get(f"/api/v1/entitlements/{oid}", headers=officer)).json()
    assert [d["period"] for d in doc["due_periods"]] == ["2021-02"]  # reported 2021-02-15, discharged 02-20
    events = await grant_events(kafka_bootstrap, other, 3)
    assert [e["type"] for e in events] == ["grant.proposed", "grant.approved", "grant.stopped"]
    assert events[2]["stopped_on"] == "2021-02-20"


async def test_reject_and_cancel_record_the_reason_and_cancel_stops_after_a_payment(relief_app, kafka_bootstrap):
    app, client = relief_app
    officer = token(app, "officer-a")
    case = await open_case(app, ("temp_assist_major", "temp_assist_unemployed"), months_without_income=6)
    r = await client.post(f"/api/v1/entitlements/{case}:P5.2c/reject", json={"reason": "已获其他救助"}, headers=officer)
    assert r.status_code == 200 and r.json()["decisions"][-1] | {"at": None} == r.json()["decisions"][-1] | {
        "action": "rejected",
        "by": "officer-a",
        "note": "已获其他救助",
        "rule_id": "P5.2c",
        "at": None,
    }
    assert (
        await client.post(f"/api/v1/entitlements/{case}:P5.2c/approve", json={"amount_yuan": "10"}, headers=officer)
    ).status_code == 409
    bid = f"{case}:P5.2b"
    await client.post(f"/api/v1/entitlements/{bid}/approve", json={"amount_yuan": "500"}, headers=officer)
    await client.post(
        f"/api/v1/entitlements/{bid}/payments", json={"period": "once", "payment_reference": "P"}, headers=officer
    )
    r = await client.post(f"/api/v1/entitlements/{bid}/cancel", json={"reason": "重复"}, headers=officer)
    assert r.status_code == 409
    events = await grant_events(kafka_bootstrap, case, 5)
    assert sorted(e["type"] for e in events) == [
        "grant.approved",
        "grant.paid",
        "grant.proposed",
        "grant.proposed",
        "grant.rejected",
    ]


def two_processes(app):
    """The app's Relief and a second one on the same database: two processes' write paths."""
    from services.relief.service import Relief

    relief = app.state.runtime.service
    return relief, Relief(store=relief.store, book=relief.book, broker=relief.broker)


async def test_concurrent_decisions_on_one_version_have_exactly_one_winner(relief_app):
    """P6.3: N writers (in two processes) holding the same version of an entitlement; exactly one decision
    is recorded (FerretDB's conditional update alone lets several win: the version claim decides)."""
    from services.relief.documents import Decision, decide_on
    from services.relief.domain.lifecycle import Conflict

    app, _ = relief_app
    case = await open_case(app, ("temp_assist_major",))
    processes = two_processes(app)
    store = processes[0].store
    eid = f"{case}:P5.2c"

    async def decide(i, version):
        try:
            await processes[i % 2].entitlements.change(
                eid, decide_on(version, {"sla_class": f"writer {i}"}, Decision(action="noted", by=f"officer-{i}"), [])
            )
            return True
        except Conflict:
            return None

    for _ in range(5):
        doc = await store.get_entitlement(eid)
        results = await asyncio.gather(*(decide(i, doc.version) for i in range(12)))
        assert sum(r is not None for r in results) == 1
    final = await store.get_entitlement(eid)
    assert final.version == doc.version + 1
    assert [d.action for d in final.decisions].count("noted") == 5


async def test_concurrent_payments_of_one_period_mark_it_paid_once(relief_app):
    """P6.1: N writers (in two processes) recording the same period paid at once; one records it (one
    grant.paid queued)."""
    from contracts.events.relief import GrantPaid
    from services.relief.documents import Decision, mark_paid

    app, _ = relief_app
    case = await open_case(app, ("temp_assist_major",))
    processes = two_processes(app)
    store = processes[0].store
    eid = f"{case}:P5.2c"
    doc = await store.get_entitlement(eid)

    def paid_event(i):
        return GrantPaid(
            grant_id=eid,
            case_id=case,
            rule_id="P5.2c",
            district="500103",
            actor=f"officer-{i}",
            amount_yuan="100.00",
            payment_reference=f"REF-{i}",
            period="once",
        )

    results = await asyncio.gather(
        *(
            processes[i % 2].entitlements.change(
                eid,
                mark_paid(
                    "once", {"sla_class": f"writer {i}"}, Decision(action="paid", by=f"officer-{i}"), [paid_event(i)]
                ),
            )
            for i in range(12)
        )
    )
    assert sum(r is not None for r in results) == 1
    final = await store.get_entitlement(eid)
    assert final.paid_periods == ["once"] and final.payments == 1
    assert [d.action for d in final.decisions].count("paid") == 1
    assert final.version == doc.version + 1
    assert [e["body"]["type"] for e in final.outbox].count("grant.paid") <= 1


async def test_help_request_and_dispatch_arriving_at_once_are_both_kept(relief_app):
    """P5.2d: the two facts of a case come from two consumers (two processes) at once; neither is lost,
    so it is evaluated, once."""
    app, _ = relief_app
    first, second = two_processes(app)
    store = first.store
    for i in range(5):
        case = f"CQ-20210215-9{i:05d}"
        needs = ("temp_assist_major",)
        await asyncio.gather(
            first.on_help_requested(help_requested(case, *needs)), second.on_dispatched(dispatched(case, needs=needs))
        )
        final = await store.get_case(case)
        assert final.help.needs == list(needs) and final.dispatch.district == "500103"
        assert final.evaluation.rules == ["P5.2c"]  # whichever came second saw both
        assert await store.entitlements.count_documents({"case_id": case}) == 1


async def test_the_officers_list_marks_a_fire_case_an_emergency_with_its_triage_rule(relief_app):
    app, client = relief_app
    fire = "T-FIRE: description mentions 着火 (P2.2, P4.1)"
    case = await open_case(app, ("temp_assist_major",), emergency=True, emergency_reasons=(fire,))
    plain = await open_case(app, ("temp_assist_major",))
    officer = token(app, "officer-a")
    listed = {
        e["case_id"]: e
        for e in (await client.get("/api/v1/entitlements?status=proposed", headers=officer)).json()
        if e["case_id"] in (case, plain)
    }
    assert listed[case]["emergency"] is True and listed[case]["emergency_reasons"] == [fire]
    assert listed[plain]["emergency"] is False and listed[plain]["emergency_reasons"] == []


async def test_p5_2_admin_changes_the_rule_parameters_from_a_date_and_new_cases_use_them(relief_app):
    """P5.2: the rule parameters are dated data an admin adds from a date, through the mechanism of the dibao
    standards; a case reported after that date is decided by, and cites, the new set."""
    app, client = relief_app
    admin = token(app, "admin-1", role="admin", district=None)
    current = (await client.get("/api/v1/standards/rules?on=2021-02-10", headers=token(app, "o"))).json()
    assert current["cite"] == "CQ-2021-02@v1"
    body = current["parameters"] | {"id": "CQ-2021-02-TEST", "effective_from": "2021-02-12"}
    body["p52b"] = body["p52b"] | {"multiplier": "1.5"}
    url = "/api/v1/admin/standards/rules"
    assert (await client.post(url, json=body, headers=token(app, "o"))).status_code == 403
    created = await client.post(url, json=body, headers=admin)
    assert created.status_code == 201 and created.json()["cite"] == "CQ-2021-02-TEST@v1"
    assert (await client.post(url, json=body, headers=admin)).status_code == 409
    bad = await client.post(url, json=body | {"effective_from": "2021-02-13", "p52c": {}}, headers=admin)
    assert bad.status_code == 422 and "p52c" in str(bad.json()["errors"])
    answers = {"unemployment_insured": "no", "cannot_return_due_to_epidemic": "yes"}
    case = await open_case(app, ("temp_assist_unemployed",), months_without_income=3, attributes=answers)
    doc = (await client.get(f"/api/v1/entitlements/{case}:P5.2b", headers=token(app, "o"))).json()
    assert doc["cap"] == "930.00" and doc["parameters"] == "CQ-2021-02-TEST@v1"  # 1.5 x 620
    assert [c["field"] for c in doc["checks"]] == ["habitual_residence_district"]
    assert doc["checks"][0]["reason_zh"].startswith("经常居住地未记录") and "P5.2d" in doc["checks"][0]["reason_en"]
    approved = await client.post(
        f"/api/v1/entitlements/{case}:P5.2b/approve", json={"amount_yuan": "930.01"}, headers=token(app, "o")
    )
    assert approved.status_code == 422  # above the cap of the set in force
    approved = await client.post(
        f"/api/v1/entitlements/{case}:P5.2b/approve", json={"amount_yuan": "930.00"}, headers=token(app, "o")
    )
    decision = approved.json()["decisions"][-1]
    assert decision["verified"] == ["habitual_residence_district"] and decision["parameters"] == "CQ-2021-02-TEST@v1"
