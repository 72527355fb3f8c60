"""The router against the real Kafka broker and the real store: dispatch, sign-for, returns → arbitration,
co-handling closure, reopening, redelivery and a poison message on a department queue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.events import CASE_EVENTS_TOPIC, department_queue_topic
from contracts.events.hotline import CaseReopened
from tests.support.events import help_requested, new_case_id
from tests.support.kafka import read_topic
from tests.support.router_harness import RouterHarness
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def dispatched(router: RouterHarness, department: str, case_id: str, role: str = "lead") -> dict:
    return await eventually(
        lambda: router.task_in_queue(department, case_id, role),
        timeout=30,
        what=f"{department}'s {role} task of {case_id} in its queue",
    )


async def lifecycle(router: RouterHarness, case_id: str, *types: str) -> list[dict]:
    async def probe() -> list[dict] | None:
        events = await router.events(case_id)
        seen = [e["type"] for e in events]
        return events if all(t in seen for t in types) else None

    return await eventually(probe, timeout=30, what=f"lifecycle events {types} of {case_id}")


async def post(router: RouterHarness, path: str, headers: dict, body: dict | None = None, status: int = 200) -> dict:
    response = await router.client.post(path, headers=headers, json=body)
    assert response.status_code == status, response.text
    return response.json()


async def test_help_request_is_dispatched_to_department_queues_with_rules_and_facts_P2_3(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "homeless_cold", description="桥下露宿"))
    lead = await dispatched(router, "civil_affairs", case_id)
    co = await dispatched(router, "health", case_id, "co_handler")
    assert lead["emergency"] is True and lead["sla_class"] == "emergency" and lead["summary"] == "桥下露宿"
    assert co["status"] == "queued"

    events = await lifecycle(router, case_id, "case.dispatched")
    decision = next(e for e in events if e["type"] == "case.dispatched")["decision"]
    assert decision["rule_ids"] == ["R-P2.2-HOMELESS-COLD"]
    assert decision["facts"]["district"] == "500103" and "P5.2d" in decision["provisions"]
    tasks = await router.events(case_id, department_queue_topic("civil_affairs"))
    assert [(t["type"], t["role"], t["district"]) for t in tasks] == [("dept.task", "lead", "500103")]


async def test_redelivered_help_request_dispatches_once(router: RouterHarness) -> None:
    case_id = new_case_id()
    request = help_requested(case_id, "price_gouging")
    await router.send_help(request)
    await router.send_help(request)  # the same event again, as after a crash before the commit
    await dispatched(router, "market_regulation", case_id)
    events = await lifecycle(router, case_id, "case.dispatched")
    assert len({e["event_id"] for e in events if e["type"] == "case.dispatched"}) == 1
    assert len(await router.queue("market_regulation")) == len(
        {r["task_id"] for r in await router.queue("market_regulation")}
    )
    assert sum(r["case_id"] == case_id for r in await router.queue("market_regulation")) == 1


async def test_sign_for_and_progress_are_recorded_and_published(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "education_aid"))
    task = await dispatched(router, "education", case_id)
    me = router.worker("education")
    signed = await post(router, f"/api/v1/tasks/{task['task_id']}/sign-for", me)
    assert signed["status"] == "signed_for"
    await post(router, f"/api/v1/tasks/{task['task_id']}/progress", me, {"note": "已联系家长", "first_contact": True})
    events = await lifecycle(router, case_id, "case.signed_for", "case.progress")
    progress = next(e for e in events if e["type"] == "case.progress")
    assert progress["first_contact"] is True and progress["actor"] == "dept_worker-education"
    # another department, or the same department in another district, may not touch it
    await post(router, f"/api/v1/tasks/{task['task_id']}/sign-for", router.worker("housing"), status=403)
    await post(router, f"/api/v1/tasks/{task['task_id']}/sign-for", router.worker("education", "500101"), status=403)


async def test_two_returns_lead_to_arbitration_and_the_coordinator_names_the_owner(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "price_gouging"))
    first = await dispatched(router, "market_regulation", case_id)
    answer = await post(
        router,
        f"/api/v1/tasks/{first['task_id']}/return",
        router.worker("market_regulation"),
        {"reason": "not_our_responsibility", "note": "不是价格问题"},
    )
    assert answer["next_step"] == "redispatched"
    second = await dispatched(router, "civil_affairs", case_id)  # re-dispatched by the catalogue, without them
    answer = await post(
        router,
        f"/api/v1/tasks/{second['task_id']}/return",
        router.worker("civil_affairs"),
        {"reason": "not_our_responsibility", "note": "属商务部门"},
    )
    assert answer["next_step"] == "arbitration"

    coordinator = router.token("coordinator", district="500103", sub="co-yuzhong")
    waiting = (
        await router.client.get("/api/v1/coordinator/cases", headers=coordinator, params={"status": "arbitration"})
    ).json()
    assert [c["case_id"] for c in waiting if c["case_id"] == case_id] == [case_id]
    assert next(c for c in waiting if c["case_id"] == case_id)["refused"] == ["market_regulation", "civil_affairs"]
    settled = await post(
        router,
        f"/api/v1/coordinator/cases/{case_id}/arbitration",
        coordinator,
        {"department": "commerce", "reason": "供应问题归商务"},
    )
    assert settled["status"] == "dispatched" and settled["arbitrated"] is True
    await dispatched(router, "commerce", case_id)

    events = await lifecycle(router, case_id, "case.arbitration_requested", "case.arbitration_settled")
    assert [e["type"] for e in events] == [
        "case.dispatched",
        "case.returned",
        "case.dispatched",
        "case.returned",
        "case.arbitration_requested",
        "case.arbitration_settled",
    ]  # per-case order kept on the lifecycle topic
    hops = [h["action"] for h in settled["history"]]
    assert hops == [
        "dispatched:help_requested",
        "returned",
        "dispatched:returned",
        "returned",
        "arbitration_requested",
        "arbitration_settled",
    ]
    assert [h["actor"] for h in settled["history"]][-1] == "co-yuzhong"


async def test_case_resolves_only_when_every_co_handler_is_done_or_waived(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "stranded_person"))  # civil affairs + hrss + education
    lead = await dispatched(router, "civil_affairs", case_id)
    hrss = await dispatched(router, "hrss", case_id, "co_handler")
    edu = await dispatched(router, "education", case_id, "co_handler")
    ca = router.worker("civil_affairs")
    await post(router, f"/api/v1/tasks/{lead['task_id']}/sign-for", ca)
    due = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    extra = await post(
        router,
        f"/api/v1/tasks/{lead['task_id']}/co-handling",
        ca,
        {"department": "housing", "note": "需要临时住所", "due_at": due},
    )
    assert extra["role"] == "co_handler" and extra["department"] == "housing"
    housing = await dispatched(router, "housing", case_id, "co_handler")

    await post(router, f"/api/v1/tasks/{lead['task_id']}/resolve", ca, {"outcome": "已安置", "note": ""})
    await post(router, f"/api/v1/tasks/{hrss['task_id']}/sign-for", router.worker("hrss"))
    await post(router, f"/api/v1/tasks/{hrss['task_id']}/resolve", router.worker("hrss"), {"outcome": "已推荐岗位"})
    await post(router, f"/api/v1/tasks/{housing['task_id']}/sign-for", router.worker("housing"))
    await post(router, f"/api/v1/tasks/{housing['task_id']}/resolve", router.worker("housing"), {"outcome": "已入住"})
    case = (await router.client.get(f"/api/v1/cases/{case_id}", headers=ca)).json()
    assert case["status"] == "awaiting_co_handlers"  # education has not finished

    bad = await router.client.post(
        f"/api/v1/tasks/{lead['task_id']}/waive", headers=ca, json={"co_task_id": edu["task_id"], "reason": ""}
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "reason"
    await post(
        router, f"/api/v1/tasks/{lead['task_id']}/waive", ca, {"co_task_id": edu["task_id"], "reason": "非在校学生"}
    )
    events = await lifecycle(router, case_id, "case.resolved")
    assert [e["type"] for e in events].count("case.resolved") == 1
    resolved = next(e for e in events if e["type"] == "case.resolved")
    assert resolved["outcome"] == "已安置"
    # P2.3: the lead's own resolution, while hrss, education and housing worked, was published first.
    (lead_done,) = [e for e in events if e["type"] == "case.lead_resolved"]
    assert lead_done["task_id"] == lead["task_id"] and lead_done["outcome"] == "已安置"
    assert sorted(a["department"] for a in lead_done["awaiting"]) == ["education", "housing", "hrss"]
    assert [e["type"] for e in events].index("case.lead_resolved") < [e["type"] for e in events].index("case.resolved")

    signed = await router.client.post(
        f"/api/v1/tasks/{hrss['task_id']}/co-handling",
        headers=router.worker("hrss"),
        json={"department": "health", "due_at": "2000-01-01T00:00:00Z"},
    )
    assert signed.status_code == 422 and signed.json()["errors"][0]["field"] == "due_at"


async def test_poison_message_on_a_department_queue_is_dead_lettered_and_the_queue_moves_on(
    router: RouterHarness,
) -> None:
    topic = router.settings.department_topic("commerce")
    case_id = new_case_id()
    producer_broker = router.broker
    await producer_broker.publish(b"{not json", topic=topic, key=case_id.encode())
    await producer_broker.publish({"type": "dept.task", "case_id": case_id}, topic=topic, key=case_id.encode())
    await router.send_help(help_requested(case_id, "supply_shortage"))  # lands on the same partition (same key)
    await dispatched(router, "commerce", case_id)
    dead = await read_topic(router.bootstrap, f"{topic}.dlq", expect=2)
    assert [d.key for d in dead] == [case_id.encode()] * 2
    errors = [dict((k, v.decode()) for k, v in d.headers)["x-dlq-error-type"] for d in dead]
    assert errors == ["ValidationError", "ValidationError"]


async def test_a_reopened_case_is_dispatched_again(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "housing_aid"))
    task = await dispatched(router, "housing", case_id)
    me = router.worker("housing")
    await post(router, f"/api/v1/tasks/{task['task_id']}/sign-for", me)
    await post(router, f"/api/v1/tasks/{task['task_id']}/resolve", me, {"outcome": "已补助"})
    reopened = CaseReopened(case_id=case_id, operator_id="op-2", reason="回访不满意")
    await router.publish(reopened, CASE_EVENTS_TOPIC)
    await router.publish(reopened, CASE_EVENTS_TOPIC)  # redelivered: reopens once
    again = await eventually(lambda: router.task_in_queue("housing", case_id), timeout=30, what="a new task")
    assert again["task_id"] != task["task_id"] and again["hop"] == 2
    events = await lifecycle(router, case_id, "case.resolved")

    async def two_dispatches() -> list[dict] | None:
        events = [e for e in await router.events(case_id) if e["type"] == "case.dispatched"]
        return events if len(events) == 2 else None

    events = await eventually(two_dispatches, timeout=30, what="the second dispatch")
    assert events[1]["cause"] == "reopened"
