"""The coordinator's workspace over the real store, fed through the handlers (TestKafkaBroker): an
escalation answered by the department stops its reminders and shows as answered; the escalation notice
(督办单); the working-day calendar API (admin); reports over time and their exports."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from openpyxl import load_workbook  # type: ignore[import-untyped]

from common.auth import issue_token
from contracts.events.notify import SLA_EVENTS_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC, EscalationAcknowledged
from services.notify import sweeper
from tests.support.events import dispatched, new_case_id

pytestmark = pytest.mark.component


def auth(runtime, role: str = "coordinator", district: str = "city") -> dict:
    token = issue_token(runtime.settings, sub=f"{role}-1", role=role, district=district)
    return {"Authorization": f"Bearer {token}"}


async def publish(runtime, event) -> None:
    await runtime.broker.publish(event.model_dump(mode="json"), topic=CASE_LIFECYCLE_TOPIC, key=event.key)


async def test_an_answered_escalation_sends_no_further_tiers_and_shows_its_answer(runtime, client) -> None:
    now = datetime.now(UTC)
    cid = new_case_id()
    # Emergency: sign for in 30 min; tiers at the breach, +15 min, +30 min. Signed for never; breach 1 min ago.
    await publish(runtime, dispatched(cid, at=now - timedelta(minutes=31), sla_class="emergency"))
    published: list[dict] = []

    @runtime.broker.subscriber(SLA_EVENTS_TOPIC)
    async def collect(body: dict) -> None:
        published.append(body)

    await runtime.broker.start()
    await sweeper.sweep_once(runtime, now=now)
    first = next(
        e for e in published if e["case_id"] == cid and e["type"] == "sla.escalated" and e["target"] == "sign_for"
    )
    assert first["tier"] == "department_head"
    await publish(
        runtime,
        EscalationAcknowledged(
            case_id=cid,
            occurred_at=now,
            actor="w-7",
            department="civil_affairs",
            district="500103",
            escalation_event_id=first["event_id"],
            answer="已派员赶赴现场，30分钟内签收",
        ),
    )
    await sweeper.sweep_once(runtime, now=now + timedelta(hours=3))
    later = [e for e in published if e["case_id"] == cid and e["type"] == "sla.escalated"]
    assert [e["tier"] for e in later if e["target"] == "sign_for"] == ["department_head"]  # no district, no city
    resolution_tiers = {e["tier"] for e in later if e["target"] == "resolution"}  # another target: still climbs
    assert resolution_tiers == {"department_head", "district_coordinator", "city_coordinator"}
    alerts = await runtime.service.store.list_notifications(case_id=cid)
    assert not [n for n in alerts if "|sign_for|escalation:district" in n.key or "|sign_for|escalation:city" in n.key]

    detail = (await client.get(f"/api/v1/cases/{cid}", headers=auth(runtime))).json()
    answered = next(e for e in detail["sla_events"] if e["event_id"] == first["event_id"])
    assert answered["answer"]["answer"] == "已派员赶赴现场，30分钟内签收" and answered["answer"]["by"] == "w-7"
    citizen = next(c for c in detail["clocks"] if c["key"] == "citizen")
    assert citizen["targets"]["sign_for"]["escalation_answered"] is True
    assert citizen["targets"]["resolution"]["escalation_answered"] is False

    notice = await client.get(
        f"/api/v1/cases/{cid}/escalation-notice", params={"event_id": first["event_id"]}, headers=auth(runtime)
    )
    assert notice.status_code == 200, notice.text
    body = notice.json()
    assert body["department_zh"] == "民政" or "民政" in body["department_zh"]
    assert body["tier_zh"] == "部门负责人" and body["target_zh"] == "签收" and body["overdue_s"] >= 60
    assert body["answer"]["answer"] == "已派员赶赴现场，30分钟内签收" and "书面答复" in body["asked_zh"]
    page = await client.get("/escalation-notice.html")
    assert page.status_code == 200 and "督办单" in page.text


async def test_the_escalation_notice_of_a_case_without_escalations_is_not_found(runtime, client) -> None:
    cid = new_case_id()
    await publish(runtime, dispatched(cid, at=datetime.now(UTC), sla_class="standard"))
    reply = await client.get(f"/api/v1/cases/{cid}/escalation-notice", headers=auth(runtime))
    assert reply.status_code == 404 and reply.json()["field"] == "event_id"


CSV_2027_ILLUSTRATION = "\n".join(
    [
        "date,weekday,kind,name_zh,name_en",
        "2027-01-01,Fri,holiday,元旦,New Year's Day",
        *(f"2027-02-{d:02d},{wd},holiday,春节,Spring Festival" for d, wd in ((8, "Mon"), (9, "Tue"), (10, "Wed"))),
        "2027-02-11,Thu,holiday,春节,Spring Festival",
        "2027-02-20,Sat,workday,春节调休上班,Spring Festival make-up workday",
        *(f"2027-10-0{d},{wd},holiday,国庆节,National Day" for d, wd in ((1, "Fri"), (4, "Mon"), (5, "Tue"))),
        *(f"2027-10-0{d},{wd},holiday,国庆节,National Day" for d, wd in ((6, "Wed"), (7, "Thu"))),
        "2027-10-09,Sat,workday,国庆节调休上班,National Day make-up workday",
        "2027-05-03,Mon,holiday,劳动节,Labour Day",
        "2027-05-04,Tue,holiday,劳动节,Labour Day",
        "2027-04-05,Mon,holiday,清明节,Qingming Festival",
        "2027-06-09,Wed,holiday,端午节,Dragon Boat Festival",
        "2027-09-15,Wed,holiday,中秋节,Mid-Autumn Festival",
    ]
)  # the format, with 13 net days off; not the real 2027 schedule, which our data does not have


async def test_an_admin_adds_a_year_that_is_validated_stored_and_counted_from_then_on(runtime, client) -> None:
    csv_headers = {**auth(runtime, "admin"), "Content-Type": "text/csv"}
    listed = (await client.get("/api/v1/calendar", headers=auth(runtime))).json()
    assert [y["year"] for y in listed["years"]] == [2026] and listed["years"][0]["source"].startswith("packaged:")
    assert 2027 in listed["missing"]  # from October 2026 on, the page asks for next year's schedule
    bad = await client.post(
        "/api/v1/calendar/2027",
        content="date,weekday,kind,name_zh,name_en\n2027-01-01,Thu,holiday,元旦,New Year\n",
        headers=csv_headers,
    )
    assert bad.status_code == 422 and bad.json()["field"] == "line 2: weekday" and bad.json()["message_zh"]
    refused = await client.post(
        "/api/v1/calendar/2027", content=CSV_2027_ILLUSTRATION, headers={**auth(runtime), "Content-Type": "text/csv"}
    )
    assert refused.status_code == 403  # coordinators read the calendar; only an admin adds to it
    added = await client.post("/api/v1/calendar/2027", content=CSV_2027_ILLUSTRATION, headers=csv_headers)
    assert added.status_code == 201, added.text
    assert (added.json()["holidays"], added.json()["workdays"]) == (15, 2)
    again = await client.post("/api/v1/calendar/2027", content=CSV_2027_ILLUSTRATION, headers=csv_headers)
    assert again.status_code == 409 and again.json()["field"] == "year"
    assert [d["_id"] for d in await runtime.service.store.stored_calendar_years()] == [2027]
    assert 2027 not in (await client.get("/api/v1/calendar", headers=auth(runtime))).json()["missing"]
    # From then on a deadline that runs into 2027 counts its holidays: 1 January is off.
    cid = new_case_id()
    start = datetime(2026, 12, 30, 2, 0, tzinfo=UTC)  # Wednesday 10:00 in Chongqing
    await publish(runtime, dispatched(cid, at=start, sla_class="standard"))
    detail = (await client.get(f"/api/v1/cases/{cid}", headers=auth(runtime))).json()
    citizen = next(c for c in detail["clocks"] if c["key"] == "citizen")
    assert citizen["targets"]["resolution"]["due_at"].startswith("2027-01-07T02:00")
    assert citizen["targets"]["resolution"]["weekdays_only"] == []


async def test_a_report_counts_each_period_and_exports_the_same_rows(runtime, client) -> None:
    day1 = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Chongqing
    day2 = day1 + timedelta(days=1)
    for at in (day1, day1, day2):
        await publish(runtime, dispatched(new_case_id(), at=at, sla_class="standard"))
    params = {"from": "2026-03-02", "to": "2026-03-03", "by": "day", "group": "district"}
    report = (await client.get("/api/v1/reports", params=params, headers=auth(runtime))).json()
    assert [(r["period"], r["group"], r["received"], r["dispatched"]) for r in report["rows"]] == [
        ("2026-03-02", "500103", 2, 2),
        ("2026-03-03", "500103", 1, 1),
    ]
    # Never signed for: each assignment's sign-for deadline (8 h) has passed, so it is decided, late.
    assert all(r["response_rate"] == 0.0 and r["sign_decided"] == r["received"] for r in report["rows"])
    weekly = (await client.get("/api/v1/reports", params={**params, "by": "week"}, headers=auth(runtime))).json()
    assert [(r["period"], r["received"]) for r in weekly["rows"]] == [("2026-W10", 3)]
    exported = await client.get("/api/v1/reports", params={**params, "format": "csv"}, headers=auth(runtime))
    rows = list(csv.reader(io.StringIO(exported.text.lstrip("\ufeff"))))
    assert rows[0][:3] == ["时段 Period", "区县/部门 District/Department", "受理量 Received"]
    assert [r[:4] for r in rows[1:]] == [["2026-03-02", "500103", "2", "2"], ["2026-03-03", "500103", "1", "1"]]
    book = await client.get("/api/v1/reports", params={**params, "format": "xlsx"}, headers=auth(runtime))
    sheet = load_workbook(io.BytesIO(book.content)).active
    assert [c.value for c in sheet[2]][:4] == ["2026-03-02", "500103", 2, 2]
    backwards = await client.get("/api/v1/reports", params={**params, "from": "2026-03-04"}, headers=auth(runtime))
    assert backwards.status_code == 422 and backwards.json()["field"] == "to"


async def test_the_page_serves_its_charting_library_itself(client) -> None:
    reply = await client.get("/static/chart.umd.min.js")
    assert reply.status_code == 200 and "Released under the MIT License" in reply.text[:300]
