"""The relief officer's desk against the real store and Kafka: the applicant on every grant (P5.2, P6.3),
the payment file for the bank holding exactly the approved-and-unpaid periods of the district (P6.1), its
return file marking them paid once (a re-import changes nothing and says so, a bad row is reported and the
rest applied), the registry search by each field (P2.3) and the P5.2d notices with their acknowledgement."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook  # type: ignore[import-untyped]

from contracts.events.hotline import Caller
from contracts.events.relief import GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC
from services.relief.domain.registry import hash_id_card
from tests.relief.conftest import case_id, help_requested, id_card, token
from tests.support.events import dispatched
from tests.support.kafka import create_topics

pytestmark = pytest.mark.integration
OFFICER = {"sub": "officer-a", "name": "经办 甲"}


async def open_case(app, needs, *, name="张三", phone="13812345678", card=None, hukou=None, district="500103", **kw):
    case = case_id()
    relief = app.state.runtime.service
    caller = Caller(name=name, phone=phone, id_card=card, hukou_district=hukou)
    await relief.on_help_requested(help_requested(case, *needs, caller=caller, district=district, **kw))
    await relief.on_dispatched(dispatched(case, needs=tuple(needs), district=district))
    return case


UNEMPLOYED: dict[str, Any] = {
    "months_without_income": 3,
    "household_status": "none",
    "special_groups": ("unemployed_uninsured",),
}


async def approved_grants(app, client):
    """Approved in 500103: a P5.2b (1,240.00), a P5.2c (2,000.00, hukou 500101), a P5.2a (1,240.00 a month
    from 2021-02-10: February and March due on 2021-03-20); a P5.2b left proposed; one in 500106."""
    a = token(app, OFFICER["sub"], name=OFFICER["name"])
    b = await open_case(app, ("temp_assist_unemployed",), name="王五", card=id_card(11), **UNEMPLOYED)
    c = await open_case(app, ("temp_assist_major",), name="赵六", card=id_card(12), hukou="500101")
    m = await open_case(app, ("temp_assist_epidemic",), name="钱七", card=id_card(13), household_status="dibao")
    p = await open_case(app, ("temp_assist_unemployed",), name="孙八", card=id_card(14), **UNEMPLOYED)
    o = await open_case(app, ("temp_assist_major",), name="周九", card=id_card(15), district="500106")
    for eid, body, who in (
        (f"{b}:P5.2b", {"amount_yuan": "1240.00"}, a),
        (f"{c}:P5.2c", {"amount_yuan": "2000.00"}, a),
        (f"{m}:P5.2a", {"confirmed_on": "2021-02-10"}, a),
        (f"{o}:P5.2c", {"amount_yuan": "500.00"}, token(app, "officer-x", district="500106")),
    ):
        r = await client.post(f"/api/v1/entitlements/{eid}/approve", json=body, headers=who)
        assert r.status_code == 200, r.text
    return a, {"b": b, "c": c, "m": m, "p": p, "o": o}


def return_csv(*rows: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["reference", "amount_yuan", "status", "bank_transaction_id", "date"])
    writer.writerows(rows)
    return out.getvalue().encode()


async def upload(client, headers, content: bytes, name="return.csv"):
    return await client.post("/api/v1/payments/returns", files={"file": (name, content)}, headers=headers)


async def test_every_grant_shows_its_applicant_masked_and_the_phone_is_revealed_only_with_a_reason(relief_app):
    app, client = relief_app
    store = app.state.runtime.service.store
    await store.registry.insert_one(
        {
            "_id": "R-13",
            "name": "钱七",
            "id_card_hash": hash_id_card(id_card(13), app.state.runtime.service.id_hash_salt),
            "id_card_masked": "500103********" + id_card(13)[-4:],
            "district": "500103",
            "area": "rural",
            "categories": ["dibao"],
            "members": 3,
            "approved_on": "2020-05-01",
            "ended_on": None,
        }
    )
    a, cases = await approved_grants(app, client)
    listed = {e["case_id"]: e for e in (await client.get("/api/v1/entitlements", headers=a)).json()}
    m = listed[cases["m"]]["applicant"]
    assert m["name"] == "钱七" and m["id_card_masked"] == f"500103********{id_card(13)[-4:]}"
    assert m["phone_masked"] == "138****5678" and m["household_status"] == "dibao"
    assert m["registry"]["recipient_id"] == "R-13" and m["registry"]["categories"] == ["dibao"]
    assert m["registry"]["members"] == 3 and m["registry"]["active"] is True
    assert listed[cases["b"]]["applicant"]["registry"] is None
    body = str(listed)
    assert id_card(13) not in body and "13812345678" not in body  # nothing in clear in the list

    eid = f"{cases['m']}:P5.2a"
    r = await client.post(f"/api/v1/entitlements/{eid}/applicant/phone", json={"reason": ""}, headers=a)
    assert r.status_code == 422
    assert not await store.audit.count_documents({"action": "reveal_phone"})
    r = await client.post(f"/api/v1/entitlements/{eid}/applicant/phone", json={"reason": "回访核实"}, headers=a)
    assert r.status_code == 200 and r.json()["phone"] == "13812345678"
    [audit] = await store.audit.find({"action": "reveal_phone"}).to_list()
    assert audit["actor"] == "officer-a" and audit["reason"] == "回访核实" and audit["case_ids"] == [cases["m"]]
    assert audit["at"] and audit["shown_as"] == "经办 甲（officer-a）"
    other = token(app, "officer-x", district="500106")
    r = await client.post(f"/api/v1/entitlements/{eid}/applicant/phone", json={"reason": "看看"}, headers=other)
    assert r.status_code == 403
    detail = (await client.get(f"/api/v1/entitlements/{eid}", headers=a)).json()
    assert detail["applicant"]["name"] == "钱七"


async def test_the_payment_file_holds_exactly_the_approved_unpaid_periods_and_its_export_is_audited(relief_app):
    app, client = relief_app
    a, cases = await approved_grants(app, client)
    expected = {
        f"{cases['b']}:P5.2b": ("王五", id_card(11), "1240.00"),
        f"{cases['c']}:P5.2c": ("赵六", id_card(12), "2000.00"),
        f"{cases['m']}:P5.2a@2021-02": ("钱七", id_card(13), "1240.00"),
        f"{cases['m']}:P5.2a@2021-03": ("钱七", id_card(13), "1240.00"),
    }
    r = await client.get("/api/v1/payments/export?format=csv", headers=a)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert "attachment" in r.headers["content-disposition"] and r.content.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert {x["reference"]: (x["payee_name"], x["id_card"], x["amount_yuan"]) for x in rows} == expected
    assert {x["district"] for x in rows} == {"500103"} and {x["district_name"] for x in rows} == {"渝中区"}

    r = await client.get("/api/v1/payments/export?format=xlsx", headers=a)
    sheet = load_workbook(io.BytesIO(r.content)).active
    assert sorted(row[0] for row in sheet.iter_rows(min_row=2, values_only=True)) == sorted(expected)
    assert (await client.get("/api/v1/payments/export?format=pdf", headers=a)).status_code == 422

    audits = await app.state.runtime.service.store.audit.find({"action": "payments_export"}).to_list()
    assert [(x["actor"], x["format"], x["rows"]) for x in audits] == [("officer-a", "csv", 4), ("officer-a", "xlsx", 4)]
    assert sorted(audits[0]["references"]) == sorted(expected)
    pending = (await client.get("/api/v1/payments/pending", headers=a)).json()
    assert pending["total_yuan"] == "5720.00" and len(pending["rows"]) == 4
    assert all("********" in x["id_card_masked"] for x in pending["rows"])


async def test_the_bank_return_marks_paid_once_reports_bad_rows_and_a_second_import_changes_nothing(
    relief_app, kafka_bootstrap
):
    await create_topics(kafka_bootstrap, GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC)
    app, client = relief_app
    a, cases = await approved_grants(app, client)
    b, c, m = f"{cases['b']}:P5.2b", f"{cases['c']}:P5.2c", f"{cases['m']}:P5.2a"
    content = return_csv(
        (b, "1240.00", "paid", "TX-1", "2021-03-21"),
        (c, "1999.00", "paid", "TX-2", "2021-03-21"),  # amount mismatch
        (f"{m}@2021-02", "1240.00", "paid", "TX-3", "2021-03-21"),
        (f"{m}@2021-03", "1240.00", "failed", "", "2021-03-21"),
        ("CQ-19990101-000001:P5.2b", "10.00", "paid", "TX-4", ""),  # unknown
        (f"{cases['o']}:P5.2c", "500.00", "paid", "TX-5", ""),  # another district's: unknown here
        (b, "12.345", "paid", "TX-6", ""),  # bad amount
    )
    r = await upload(client, a, content)
    assert r.status_code == 200, r.text
    report = r.json()
    assert [(x["line"], x["outcome"]) for x in report["lines"]] == [
        (2, "paid"),
        (3, "amount_mismatch"),
        (4, "paid"),
        (5, "failed_at_bank"),
        (6, "unknown_reference"),
        (7, "unknown_reference"),
        (8, "invalid"),
    ]
    assert report["changed"] == 2 and report["earlier_import"] is None
    assert report["lines"][1]["expected_amount"] == "2000.00" and "1999.00" in report["lines"][1]["message_zh"]
    assert report["lines"][6]["errors"][0]["field"] == "amount_yuan"
    ledger = app.state.runtime.db["ledger"]
    assert await ledger.count_documents({}) == 2
    entry = await ledger.find_one({"entitlement_id": b})
    assert entry["payment_reference"] == "TX-1" and entry["amount"] == "1240.00"
    grant = (await client.get(f"/api/v1/entitlements/{b}", headers=a)).json()
    assert grant["status"] == "paid" and grant["decisions"][-1]["bank_paid_on"] == "2021-03-21"
    assert grant["decisions"][-1]["shown_as"] == "经办 甲（officer-a）"
    monthly = (await client.get(f"/api/v1/entitlements/{m}", headers=a)).json()
    assert monthly["paid_periods"] == ["2021-02"] and [d["period"] for d in monthly["due_periods"]] == ["2021-03"]

    again = (await upload(client, a, content)).json()
    assert again["changed"] == 0 and again["earlier_import"]["by"] == "经办 甲（officer-a）"
    assert [x["outcome"] for x in again["lines"]][:3] == ["already_paid", "amount_mismatch", "already_paid"]
    assert "未做任何更改" in again["message_zh"] and "nothing changed" in again["message_en"]
    assert await ledger.count_documents({}) == 2
    imports = await app.state.runtime.db["payment_returns"].find().to_list()
    assert [x["changed"] for x in imports] == [2, 0] and imports[0]["by"] == "officer-a"

    left = {x["reference"] for x in (await client.get("/api/v1/payments/pending", headers=a)).json()["rows"]}
    assert left == {c, f"{m}@2021-03"}  # the mismatch and the bank's failure stay to be paid


async def test_a_return_file_in_excel_with_chinese_headers_is_applied_and_a_headerless_file_refused(relief_app):
    app, client = relief_app
    a, cases = await approved_grants(app, client)
    book = Workbook()
    sheet = book.active
    sheet.append(["付款编号", "金额", "状态", "银行流水号", "日期"])
    sheet.append([f"{cases['b']}:P5.2b", 1240, "成功", "TX-9", "2021-03-22"])
    out = io.BytesIO()
    book.save(out)
    r = await upload(client, a, out.getvalue(), "回单.xlsx")
    assert r.status_code == 200 and r.json()["lines"][0]["outcome"] == "paid", r.text
    r = await upload(client, a, b"foo,bar\n1,2\n")
    assert r.status_code == 422 and r.json()["field"] == "file" and "status" in r.json()["message_en"]


async def test_the_registry_is_searched_by_name_masked_or_whole_id_card_digits_district_and_category(relief_app):
    app, client = relief_app
    a = token(app, "officer-a")
    rows = [
        "recipient_id,name,id_card,district,area,categories,approved_on,ended_on,members",
        f"R1,张三丰,{id_card(21)},500103,urban,dibao,2020-05-01,,3",
        f"R2,李四,{id_card(22)},500103,rural,tekun,2020-05-01,,",
        f"R3,张小明,{id_card(23)},500103,urban,tekun orphan,2020-05-01,,1",
        f"R4,张远,{id_card(24)},500106,urban,dibao,2020-05-01,,",
    ]
    coordinator = token(app, "coord", role="coordinator", district=None)
    files = {"file": ("r.csv", "\n".join(rows).encode())}
    assert (await client.post("/api/v1/registry/import", files=files, headers=coordinator)).json()["accepted"] == 4

    async def ids(**params):
        r = await client.get("/api/v1/registry", params=params, headers=a)
        assert r.status_code == 200, r.text
        return [x["_id"] for x in r.json()["items"]], r.json()["total"]

    assert await ids(q="张") == (["R1", "R3"], 2)  # 500106's 张远 is not the officer's
    assert await ids(q=id_card(22)) == (["R2"], 1)
    assert await ids(q=f"500103********{id_card(23)[-4:]}") == (["R3"], 1)
    assert await ids(q=id_card(21)[-4:]) == (["R1"], 1)
    assert await ids(q="R2") == (["R2"], 1)
    assert await ids(q="500103") == (["R1", "R2", "R3"], 3)  # the district of issue a masked number shows
    assert await ids(q="5001031") == ([], 0)  # more digits than it shows
    assert await ids(q="小明") == (["R3"], 1)
    assert await ids(category="tekun") == (["R2", "R3"], 2)
    assert await ids(page=2, page_size=2) == (["R3"], 3)
    listed = (await client.get("/api/v1/registry", params={"q": "张三丰"}, headers=a)).json()["items"][0]
    assert (
        listed["members"] == 3
        and listed["id_card_masked"].startswith("500103********")
        and "id_card_hash" not in listed
    )
    assert (await client.get("/api/v1/registry", params={"district": "500106"}, headers=a)).status_code == 403
    assert (await client.get("/api/v1/registry", params={"district": "500106"}, headers=coordinator)).json()[
        "total"
    ] == 1
    assert (await client.get("/api/v1/registry", params={"category": "rich"}, headers=a)).status_code == 422
    searches = await app.state.runtime.service.store.audit.find({"action": "registry_search"}).to_list()
    assert searches and all(id_card(22) not in str(s) for s in searches)


async def test_registry_records_stored_before_the_search_had_terms_are_filed_and_then_found(relief_app):
    """P2.3: the registry search finds records by equality on their terms; records written by an earlier
    version carry none, and the start-up backfill files them (once: a second run changes nothing)."""
    app, client = relief_app
    store = app.state.runtime.service.store
    legacy = {
        "_id": "R-OLD",
        "name": "王老五",
        "id_card_masked": "500103********4321",
        "district": "500103",
        "area": "urban",
        "categories": ["dibao"],
        "approved_on": "2019-01-01",
    }
    await store.registry.insert_one(legacy)
    a = token(app, "officer-a")

    async def found(q: str) -> list[str]:
        r = await client.get("/api/v1/registry", params={"q": q}, headers=a)
        assert r.status_code == 200, r.text
        return [x["_id"] for x in r.json()["items"]]

    assert await found("老五") == []  # not filed yet
    assert await store.file_registry_terms() == 1
    assert await found("老五") == ["R-OLD"] and await found("4321") == ["R-OLD"]
    assert await store.file_registry_terms() == 0


async def test_the_hukou_district_lists_its_p52d_notices_and_acknowledges_each_once(relief_app, kafka_bootstrap):
    await create_topics(kafka_bootstrap, GRANT_EVENTS_TOPIC, HUKOU_NOTICE_TOPIC)
    app, client = relief_app
    a, cases = await approved_grants(app, client)
    c = f"{cases['c']}:P5.2c"
    home = token(app, "officer-h", district="500101", name="户籍地 经办")
    assert (await client.get("/api/v1/hukou-notices", headers=home)).json() == []  # not paid: not told yet
    r = await client.post(
        f"/api/v1/entitlements/{c}/payments", json={"period": "once", "payment_reference": "BANK-1"}, headers=a
    )
    assert r.status_code == 201
    [notice] = (await client.get("/api/v1/hukou-notices", headers=home)).json()
    assert (notice["grant_id"], notice["paying_district"], notice["hukou_district"]) == (c, "500103", "500101")
    assert notice["amount"] == "2000.00" and notice["applicant"]["name"] == "赵六" and notice["acknowledged"] is None
    sent = (await client.get("/api/v1/hukou-notices?direction=sent", headers=a)).json()
    assert [n["grant_id"] for n in sent] == [c]
    assert (await client.get("/api/v1/hukou-notices", headers=a)).json() == []

    assert (await client.post(f"/api/v1/hukou-notices/{c}/acknowledge", json={}, headers=a)).status_code == 403
    r = await client.post(f"/api/v1/hukou-notices/{c}/acknowledge", json={"note": "已知悉"}, headers=home)
    assert r.status_code == 201 and r.json()["notice"]["acknowledged"]["shown_as"] == "户籍地 经办（officer-h）"
    again = await client.post(f"/api/v1/hukou-notices/{c}/acknowledge", json={"note": "再次"}, headers=home)
    assert again.status_code == 200 and again.json()["notice"]["acknowledged"]["note"] == "已知悉"
    assert await app.state.runtime.db["hukou_acknowledgements"].count_documents({}) == 1
