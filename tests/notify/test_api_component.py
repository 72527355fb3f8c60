"""The coordinator API over the real store, fed through the handlers (TestKafkaBroker)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.auth import issue_token
from contracts.events.hotline import HELP_REQUESTED_TOPIC
from contracts.events.router import CASE_LIFECYCLE_TOPIC, ArbitrationRequested, LeadResolved
from tests.support.events import co, dispatched, help_requested, new_case_id, resolved, returned, signed

pytestmark = pytest.mark.component


def auth(runtime, role: str = "coordinator", district: str = "city", department: str | None = None) -> dict:
    token = issue_token(runtime.settings, sub=f"{role}-1", role=role, district=district, department=department)
    return {"Authorization": f"Bearer {token}"}


async def publish(runtime, *events, topic: str = CASE_LIFECYCLE_TOPIC) -> None:
    for event in events:
        await runtime.broker.publish(event.model_dump(mode="json"), topic=topic, key=event.key)


async def test_overdue_at_risk_and_unassigned_views_sorted_by_lateness(runtime, client) -> None:
    now = datetime.now(UTC)
    very_late, late, soon, returned_case = new_case_id(), new_case_id(), new_case_id(), new_case_id()
    await publish(
        runtime,
        dispatched(very_late, at=now - timedelta(hours=5), sla_class="emergency"),
        dispatched(late, at=now - timedelta(hours=1), sla_class="emergency"),
        dispatched(soon, at=now - timedelta(minutes=20), sla_class="emergency"),
        signed(soon, at=now - timedelta(minutes=15)),
        dispatched(returned_case, at=now, sla_class="standard"),
        returned(returned_case, at=now + timedelta(seconds=1)),
    )
    headers = auth(runtime)
    overdue = (await client.get("/api/v1/overdue", headers=headers)).json()
    ids = [c["case_id"] for c in overdue]
    assert ids.index(very_late) < ids.index(late) and soon not in ids
    assert overdue[ids.index(very_late)]["late_s"] > 3 * 3600
    at_risk = [c["case_id"] for c in (await client.get("/api/v1/at-risk", params={"hours": 1}, headers=headers)).json()]
    assert soon in at_risk and very_late not in at_risk
    unassigned = (await client.get("/api/v1/unassigned", headers=headers)).json()
    row = next(c for c in unassigned if c["case_id"] == returned_case)
    assert row["department"] == "civil_affairs" and row["assigned"] is False
    assert returned_case in [c["case_id"] for c in (await client.get("/api/v1/returned", headers=headers)).json()]
    await publish(runtime, ArbitrationRequested(case_id=returned_case, actor="router", returns=2))
    rows = (await client.get("/api/v1/cases", params={"view": "arbitration"}, headers=headers)).json()
    assert [c["case_id"] for c in rows] == [returned_case]


async def test_cases_list_keeps_the_walking_skeleton_fields_and_scopes_by_district(runtime, client) -> None:
    mine, other = new_case_id(), new_case_id()
    await publish(runtime, dispatched(mine, sla_class="emergency", at=datetime.now(UTC)))
    other_event = dispatched(other, at=datetime.now(UTC)).model_copy(update={"district": "500101"})
    await publish(runtime, other_event)
    district = auth(runtime, district="500103")
    rows = (await client.get("/api/v1/cases", headers=district)).json()
    item = next(c for c in rows if c["case_id"] == mine)
    assert (item["district"], item["department"], item["sla_class"]) == ("500103", "civil_affairs", "emergency")
    assert other not in [c["case_id"] for c in rows]
    refused = await client.get("/api/v1/cases", params={"district": "500101"}, headers=district)
    assert refused.status_code == 403 and refused.json()["message_zh"]
    assert (await client.get(f"/api/v1/cases/{other}", headers=district)).status_code == 403
    city = (await client.get("/api/v1/cases", headers=auth(runtime))).json()
    assert {mine, other} <= {c["case_id"] for c in city}
    assert (await client.get("/api/v1/cases", headers=auth(runtime, role="operator"))).status_code == 403


async def test_department_worker_pauses_and_resumes_its_case_clock(runtime, client) -> None:
    cid = new_case_id()
    await publish(runtime, dispatched(cid, at=datetime.now(UTC), sla_class="standard"))
    worker = auth(runtime, role="dept_worker", district="500103", department="civil_affairs")
    paused = await client.post(f"/api/v1/cases/{cid}/pause", json={"reason": "waiting_for_caller"}, headers=worker)
    assert paused.status_code == 200, paused.text
    detail = (await client.get(f"/api/v1/cases/{cid}", headers=auth(runtime))).json()
    assert detail["paused"] is True
    assert detail["decisions"][-1]["what"] == "pause" and detail["decisions"][-1]["by"] == "dept_worker-1"
    resumed = await client.post(f"/api/v1/cases/{cid}/resume", headers=worker)
    assert resumed.status_code == 200
    outsider = auth(runtime, role="dept_worker", district="500103", department="housing")
    assert (
        await client.post(f"/api/v1/cases/{cid}/pause", json={"reason": "waiting_for_caller"}, headers=outsider)
    ).status_code == 403


async def test_pause_refusals_say_why_in_chinese_and_english(runtime, client) -> None:
    cid = new_case_id()
    await publish(runtime, dispatched(cid, at=datetime.now(UTC), sla_class="emergency"))
    headers = auth(runtime)
    refused = await client.post(f"/api/v1/cases/{cid}/pause", json={"reason": "waiting_for_caller"}, headers=headers)
    assert refused.status_code == 409
    assert "P2.2" in refused.json()["message_zh"] and refused.json()["message_en"]
    bad = await client.post(f"/api/v1/cases/{cid}/pause", json={"reason": "lunch"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reason"
    missing = await client.post(
        "/api/v1/cases/CQ-20260215-999999/pause", json={"reason": "waiting_for_caller"}, headers=headers
    )
    assert missing.status_code == 404 and missing.json()["field"] == "case_id"


async def test_rates_endpoint_gives_the_three_rates_and_backlog(runtime, client) -> None:
    now = datetime.now(UTC)
    cid = new_case_id()
    await publish(
        runtime,
        dispatched(cid, at=now - timedelta(minutes=30), sla_class="emergency"),
        signed(cid, at=now - timedelta(minutes=25)),
        resolved(cid, at=now - timedelta(minutes=1)),
    )
    rows = (await client.get("/api/v1/rates", params={"by": "district"}, headers=auth(runtime))).json()
    row = next(r for r in rows if r["district"] == "500103")
    assert set(row) >= {"response_rate", "on_time_resolution_rate", "satisfaction_rate", "backlog"}
    assert row["response_rate"] == 1.0 and row["on_time_resolution_rate"] == 1.0


async def test_a_returned_case_the_router_redispatched_stays_in_the_returned_view_and_its_count(
    runtime, client
) -> None:
    now = datetime.now(UTC)
    cid = new_case_id()
    await publish(
        runtime,
        help_requested(cid, "special_group_visit", at=now, description="独居老人多日未见，邻居担心其安全" * 20),
        topic=HELP_REQUESTED_TOPIC,
    )
    await publish(
        runtime,
        dispatched(cid, at=now, needs=("special_group_visit",)),
        returned(cid, at=now + timedelta(seconds=1)),
        dispatched(
            cid,
            at=now + timedelta(seconds=2),
            hop=2,
            department="housing",
            cause="returned",
            needs=("special_group_visit",),
        ),
    )
    headers = auth(runtime)
    rows = (await client.get("/api/v1/cases", params={"view": "returned"}, headers=headers)).json()
    row = next(c for c in rows if c["case_id"] == cid)
    assert (row["stage"], row["department"], row["returns"]) == ("dispatched", "housing", 1)
    assert row["needs"] == ["special_group_visit"]
    assert row["summary"].startswith("独居老人多日未见") and len(row["summary"]) == 200
    assert cid in [c["case_id"] for c in (await client.get("/api/v1/returned", headers=headers)).json()]

    counts = (await client.get("/api/v1/counts", headers=headers)).json()
    assert set(counts) == {"overdue", "at_risk", "unassigned", "returned", "arbitration", "open"}
    listed = {
        view: len((await client.get("/api/v1/cases", params={"view": view}, headers=headers)).json()) for view in counts
    }
    assert counts == listed and counts["returned"] >= 1
    district = await client.get(
        "/api/v1/counts", params={"district": "500101"}, headers=auth(runtime, district="500103")
    )
    assert district.status_code == 403 and district.json()["field"] == "district"


async def test_a_negative_at_risk_horizon_is_refused_naming_the_field(runtime, client) -> None:
    for path in ("/api/v1/cases?view=at_risk&hours=-2", "/api/v1/counts?hours=-2"):
        refused = await client.get(path, headers=auth(runtime))
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"].endswith("hours")


async def test_the_page_is_the_coordinators_workspace_chinese_first(client) -> None:
    page = await client.get("/")
    assert page.status_code == 200 and "督办统筹" in page.text and "English" in page.text
    assert '<link rel="icon" href="data:,">' in page.text  # no favicon request
    assert "../router/api/v1/" in page.text  # the router's coordination steps, through the front door
    assert 'id="token" type="password"' in page.text  # a pasted token is never shown in clear


async def test_p23_an_overdue_case_awaiting_a_co_handler_is_listed_under_the_co_handler_not_the_lead(
    runtime, client
) -> None:
    """P2.3/P6.2: the lead resolved its part; the late case is the co-handler's in the overdue list."""
    now = datetime.now(UTC)
    case_id = new_case_id()
    start = now - timedelta(hours=5)
    await publish(
        runtime,
        dispatched(case_id, at=start, sla_class="emergency", co_handlers=("health",)),
        signed(case_id, at=start + timedelta(minutes=5)),
        LeadResolved(
            case_id=case_id,
            occurred_at=start + timedelta(minutes=30),
            actor="w-1",
            department="civil_affairs",
            district="500103",
            task_id=f"{case_id}-T1",
            outcome="已安置",
            awaiting=(co("health"),),
        ),
    )
    headers = auth(runtime)
    row = next(c for c in (await client.get("/api/v1/overdue", headers=headers)).json() if c["case_id"] == case_id)
    assert (row["department"], row["awaiting_co_handlers"], row["stage"]) == (
        "health",
        ["health"],
        "awaiting_co_handlers",
    )
    mine = await client.get("/api/v1/overdue", params={"department": "civil_affairs"}, headers=headers)
    theirs = await client.get("/api/v1/overdue", params={"department": "health"}, headers=headers)
    assert case_id not in [c["case_id"] for c in mine.json()]
    assert case_id in [c["case_id"] for c in theirs.json()]
