"""The router's HTTP API and its safety nets, against the real Kafka broker and store: queue order, access
rules, bilingual errors, coordinator actions, bad help requests, crash recovery and concurrent writers."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from common.aggregates import Aggregates
from common.principal import Principal
from contracts.events import HELP_REQUESTED_TOPIC, utcnow
from services.router.cases import CaseService
from services.router.domain import desk
from services.router.domain.case import Case
from services.router.store import RouterStore
from tests.support.events import help_requested, new_case_id
from tests.support.kafka import read_topic
from tests.support.router_harness import RouterHarness
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def queued(router: RouterHarness, department: str, case_id: str, role: str = "lead") -> dict:
    return await eventually(
        lambda: router.task_in_queue(department, case_id, role), timeout=30, what=f"{department}'s task of {case_id}"
    )


async def test_queue_lists_emergencies_first_then_the_oldest(router: RouterHarness) -> None:
    base = datetime.now(UTC) - timedelta(hours=1)
    older, newer, urgent = new_case_id(), new_case_id(), new_case_id()
    await router.send_help(help_requested(newer, "other", district="500104", received_at=base + timedelta(minutes=2)))
    await router.send_help(help_requested(older, "other", district="500104", received_at=base))
    await router.send_help(
        help_requested(urgent, "homeless_cold", district="500104", received_at=base + timedelta(minutes=5))
    )
    for case_id in (older, newer, urgent):
        await eventually(functools.partial(router.service.store.get, case_id), what=f"case {case_id}")
    worker = router.worker("civil_affairs", "500104")

    async def listed() -> list[str] | None:
        rows = (await router.client.get("/api/v1/queue", headers=worker)).json()
        ids = [r["case_id"] for r in rows if r["case_id"] in (older, newer, urgent)]
        return ids if len(ids) == 3 else None

    assert await eventually(listed, timeout=30, what="three tasks in the queue") == [urgent, older, newer]
    only_queued = (await router.client.get("/api/v1/queue", headers=worker, params={"status": "signed_for"})).json()
    assert not [r for r in only_queued if r["case_id"] in (older, newer, urgent)]


async def test_the_desk_page_is_served_in_chinese_with_english_available(router: RouterHarness) -> None:
    page = await router.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    # Relative API paths: the same page works here and behind the front door at /router/.
    assert "部门工作台" in page.text and "Department desk" in page.text and '"api/v1/queue' in page.text
    # The desk is the department worker's: a coordinator settles arbitration in the coordination workspace.
    assert "api/v1/coordinator" not in page.text and "已联系来电人（首次联系）" in page.text


async def test_requests_without_a_token_or_with_the_wrong_role_are_refused(router: RouterHarness) -> None:
    assert (await router.client.get("/api/v1/queue")).status_code == 401
    operator = router.token("operator", district="500103")
    assert (await router.client.get("/api/v1/queue", headers=operator)).status_code == 403
    no_department = router.token("dept_worker", None, "500103")
    response = await router.client.get("/api/v1/queue", headers=no_department)
    assert response.status_code == 403 and response.json()["message_zh"]


async def test_bad_input_names_the_field_in_chinese_and_english(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "employment_aid"))
    task = await queued(router, "hrss", case_id)
    response = await router.client.post(
        f"/api/v1/tasks/{task['task_id']}/return",
        headers=router.worker("hrss"),
        json={"reason": "too_busy", "note": "x"},
    )
    assert response.status_code == 422
    error = response.json()["errors"][0]
    assert error["field"] == "reason" and error["reason_zh"] == "取值不在允许范围内" and error["reason_en"]
    missing = await router.client.post("/api/v1/tasks/CQ-20260101-999999-T1/sign-for", headers=router.worker("hrss"))
    assert missing.status_code == 404 and missing.json()["message_zh"].startswith("案件")
    early = await router.client.post(
        f"/api/v1/tasks/{task['task_id']}/progress", headers=router.worker("hrss"), json={"note": "未签收先记录"}
    )
    assert early.status_code == 409 and early.json()["message_en"] == "sign for the task before recording progress"


async def test_the_lead_keeps_a_case_awaiting_a_silent_co_handler_in_view_and_waives_it(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "homeless_cold"))  # civil affairs leads, health co-handles
    task = await queued(router, "civil_affairs", case_id)
    health = await queued(router, "health", case_id, role="co_handler")
    assert [(t["task_id"], t["department"]) for t in task["co_tasks"]] == [(health["task_id"], "health")]
    civil = router.worker("civil_affairs")
    base = f"/api/v1/tasks/{task['task_id']}"
    assert (await router.client.post(f"{base}/sign-for", headers=civil)).status_code == 200
    contacted = await router.client.post(
        f"{base}/progress", headers=civil, json={"note": "已电话联系来电人", "first_contact": True}
    )
    assert contacted.status_code == 200 and contacted.json()["first_contact_at"]
    resolved = await router.client.post(f"{base}/resolve", headers=civil, json={"outcome": "已送救助站", "note": ""})
    assert resolved.json()["case_status"] == "awaiting_co_handlers"

    def listed(rows: list[dict]) -> list[str]:
        return [r["status"] for r in rows if r["case_id"] == case_id]

    assert listed(await router.queue("civil_affairs")) == []  # the default queue: workable tasks only
    assert listed(await router.queue("civil_affairs", awaiting_co_handlers="true")) == ["resolved"]
    waived = await router.client.post(
        f"{base}/waive", headers=civil, json={"co_task_id": health["task_id"], "reason": "两小时未响应"}
    )
    assert waived.status_code == 200 and waived.json()["case_status"] == "resolved"
    assert listed(await router.queue("civil_affairs", awaiting_co_handlers="true")) == []
    case = (await router.client.get(f"/api/v1/cases/{case_id}", headers=civil)).json()
    assert case["tasks"][0]["first_contact_at"]
    assert [h["note"] for h in case["history"] if h.get("first_contact")] == ["已电话联系来电人"]


async def test_a_return_says_which_department_leads_now(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "price_gouging"))  # market regulation, then civil affairs
    task = await queued(router, "market_regulation", case_id)
    returned = await router.client.post(
        f"/api/v1/tasks/{task['task_id']}/return",
        headers=router.worker("market_regulation"),
        json={"reason": "not_our_responsibility", "note": "非价格违法"},
    )
    assert returned.status_code == 200, returned.text
    assert (returned.json()["next_step"], returned.json()["redispatched_to"]) == ("redispatched", "civil_affairs")


async def test_coordinator_reassigns_changes_the_lead_and_merges_duplicates(router: RouterHarness) -> None:
    first, duplicate = new_case_id(), new_case_id()
    await router.send_help(help_requested(first, "disaster_housing"))  # housing leads, emergency management co-handles
    await router.send_help(help_requested(duplicate, "disaster_housing"))
    await queued(router, "housing", first)
    await queued(router, "housing", duplicate)
    coordinator = router.token("coordinator", district="500103", sub="co-yz")
    elsewhere = router.token("coordinator", district="500101", sub="co-wz")

    response = await router.client.post(
        f"/api/v1/coordinator/cases/{first}/reassign",
        headers=elsewhere,
        json={"department": "civil_affairs", "reason": "x"},
    )
    assert response.status_code == 403

    case = (
        await router.client.post(
            f"/api/v1/coordinator/cases/{first}/lead",
            headers=coordinator,
            json={"department": "emergency_management", "reason": "以救灾为主"},
        )
    ).json()
    assert case["tasks"][-2]["department"] == "emergency_management" and case["tasks"][-2]["role"] == "lead"
    await queued(router, "emergency_management", first)
    await queued(router, "housing", first, "co_handler")

    case = (
        await router.client.post(
            f"/api/v1/coordinator/cases/{first}/reassign",
            headers=coordinator,
            json={"department": "civil_affairs", "reason": "先安置"},
        )
    ).json()
    assert case["tasks"][-1]["department"] == "civil_affairs"
    await queued(router, "civil_affairs", first)

    merged = (
        await router.client.post(
            f"/api/v1/coordinator/cases/{duplicate}/merge",
            headers=coordinator,
            json={"into_case_id": first, "note": "同一户"},
        )
    ).json()
    assert merged["status"] == "merged" and merged["merged_into"] == first
    parent = (await router.client.get(f"/api/v1/cases/{first}", headers=coordinator)).json()
    assert parent["children"] == [duplicate]
    assert not [r for r in await router.queue("housing") if r["case_id"] == duplicate]
    types = [e["type"] for e in await router.events(first)]
    assert types.count("case.reassigned") == 2
    assert "case.merged" in [e["type"] for e in await router.events(duplicate)]


async def test_a_bad_help_request_is_dead_lettered_and_the_rest_of_its_batch_dispatched(router: RouterHarness) -> None:
    topic = router.settings.topic(HELP_REQUESTED_TOPIC)
    good = new_case_id()
    broker = router.broker
    await broker.publish({"case_id": "CQ-20260101-000000", "needs": []}, topic=topic, key=b"bad")
    await router.send_help(help_requested(good, "supply_shortage"))
    await queued(router, "commerce", good)
    dead = await read_topic(router.bootstrap, f"{topic}.dlq", expect=1)
    assert [d.key for d in dead] == [b"bad"]
    assert dict((k, v.decode()) for k, v in dead[0].headers)["x-dlq-error-type"] == "ValidationError"


async def test_a_different_request_reusing_a_taken_case_id_is_refused_not_dispatched(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "price_gouging"))
    await queued(router, "market_regulation", case_id)
    await router.send_help(help_requested(case_id, "homeless_cold"))  # another request, same case id
    topic = router.settings.topic(HELP_REQUESTED_TOPIC)

    async def dead_letters() -> list | None:
        dead = await read_topic(router.bootstrap, f"{topic}.dlq", expect=1000, timeout_s=1)
        return [d for d in dead if d.key == case_id.encode()] or None

    conflict = await eventually(dead_letters, timeout=30, what="the conflicting request in the DLQ")
    assert len(conflict) == 1
    headers = dict((k, v.decode()) for k, v in conflict[0].headers)
    assert headers["x-dlq-error-type"] == "CaseIdConflict"
    case = await router.stored_case(case_id)
    assert case.needs == ("price_gouging",) and [t.department for t in case.tasks] == ["market_regulation"]


async def test_events_left_in_the_outbox_by_a_crash_are_published_by_the_sweeper(router: RouterHarness) -> None:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "chronic_followup"))
    task = await queued(router, "health", case_id)
    store: RouterStore = router.service.store

    async def crashed(_: object) -> None:
        raise ConnectionError("killed before publishing")

    cases = router.service.cases
    crashing = Aggregates(cases.collection, store.claims, cases.codec, crashed, archive=cases.archive)

    def sign(case):
        desk.sign_for(case, task["task_id"], _principal("health"), utcnow())
        return case

    assert await crashing.change(case_id, sign)  # stored with its outbox, then "crashed" before publishing
    assert (await router.stored_case(case_id)).outbox
    events = await eventually(
        lambda: _types_of(router, case_id, "case.signed_for"), timeout=30, what="the sweeper to publish"
    )
    assert events.count("case.signed_for") == 1
    await eventually(lambda: _outbox_published(store, case_id), what="the outbox to be recorded as published")


async def test_two_writers_on_one_case_never_lose_a_change(router: RouterHarness, mongo_client) -> None:
    """Two processes (two services with their own locks) change one case at once: both changes survive."""
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, "stranded_person"))  # three tasks
    await queued(router, "education", case_id, "co_handler")
    lead = await queued(router, "civil_affairs", case_id)
    hrss = await queued(router, "hrss", case_id, "co_handler")
    edu = await queued(router, "education", case_id, "co_handler")
    other = CaseService(
        store=RouterStore(router.service.store.db),
        broker=router.broker,
        settings=router.settings,
        catalogue=router.service.catalogue,
    )
    signers = [(router.service, lead, "civil_affairs"), (other, hrss, "hrss"), (router.service, edu, "education")]

    def sign_for(task: dict[str, Any], department: str) -> Callable[[Case], None]:
        return lambda case: desk.sign_for(case, task["task_id"], _principal(department), utcnow())

    await asyncio.gather(*(svc.update(case_id, sign_for(t, d)) for svc, t, d in signers))
    case = await router.stored_case(case_id)
    assert sorted(t.status for t in case.tasks) == ["signed_for"] * 3


def _principal(department: str) -> Principal:
    return Principal(sub=f"w-{department}", role="dept_worker", department=department, district="500103")


async def _types_of(router: RouterHarness, case_id: str, wanted: str) -> list[str] | None:
    types = [e["type"] for e in await router.events(case_id)]
    return types if wanted in types else None


async def _outbox_published(store: RouterStore, case_id: str) -> bool:
    case = await store.get(case_id)
    assert case is not None
    return await store.db["cases_published_claims"].find_one({"_id": f"{case_id}@{case.version}"}) is not None
