"""Long-closed cases leave the working set (which FerretDB scans whole for every queue listing) for the
archive: still found by case id, brought back when they change, and never dispatched a second time when
their help request is replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from contracts.events import CASE_EVENTS_TOPIC, utcnow
from contracts.events.hotline import CaseReopened
from services.router.domain.case import Case
from tests.router.test_router_integration import dispatched, lifecycle, post
from tests.support.events import help_requested, new_case_id
from tests.support.router_harness import RouterHarness
from tests.support.waiting import eventually

pytestmark = pytest.mark.integration


async def resolved_case(
    router: RouterHarness, need: str = "housing_aid", department: str = "housing", **fields: Any
) -> tuple[str, dict[str, Any]]:
    case_id = new_case_id()
    await router.send_help(help_requested(case_id, need, **fields))
    task = await dispatched(router, department, case_id)
    me = router.worker(department)
    await post(router, f"/api/v1/tasks/{task['task_id']}/sign-for", me)
    await post(router, f"/api/v1/tasks/{task['task_id']}/resolve", me, {"outcome": "已解决"})
    await lifecycle(router, case_id, "case.resolved")
    return case_id, task


async def archive_now(router: RouterHarness) -> int:
    """What the archiver does once `archive_after_s` has passed (for every case, today's too)."""
    router.service.cases.archive_after = timedelta(0)
    return await router.service.cases.archive_finished()


async def test_a_long_closed_case_leaves_the_queues_but_is_still_found(router: RouterHarness) -> None:
    open_id = new_case_id()
    await router.send_help(help_requested(open_id, "housing_aid"))
    await dispatched(router, "housing", open_id)
    case_id, task = await resolved_case(router)
    resolved = await router.queue("housing", status=["resolved"])
    assert task["task_id"] in {r["task_id"] for r in resolved}

    assert await archive_now(router) >= 1
    store = router.service.store
    assert await store.cases.find_one({"_id": case_id}) is None
    assert await store.archive.find_one({"_id": case_id}) is not None
    assert await store.cases.find_one({"_id": open_id}) is not None  # open cases stay
    assert task["task_id"] not in {r["task_id"] for r in await router.queue("housing", status=["resolved"])}
    response = await router.client.get(f"/api/v1/cases/{case_id}", headers=router.worker("housing"))
    assert response.status_code == 200 and response.json()["status"] == "resolved"


async def test_a_case_changed_after_archiving_comes_back_and_goes_on(router: RouterHarness) -> None:
    case_id, task = await resolved_case(router)
    assert await archive_now(router) >= 1
    archived = await router.service.store.archive.find_one({"_id": case_id})
    assert archived is not None
    archived_version = archived["version"]

    await router.publish(CaseReopened(case_id=case_id, operator_id="op-2", reason="回访不满意"), CASE_EVENTS_TOPIC)
    again = await eventually(lambda: router.task_in_queue("housing", case_id), timeout=30, what="a new task")
    assert again["task_id"] != task["task_id"] and again["hop"] == 2
    store = router.service.store
    back = await store.cases.find_one({"_id": case_id})
    assert back is not None and back["version"] > archived_version
    live = await store.get(case_id)
    assert live is not None and live.status == "dispatched" and live.hop == 2  # the working set wins

    # Closed and archived again: the archived copy is the new one.
    again_task = await router.task_in_queue("housing", case_id)
    assert again_task is not None
    me = router.worker("housing")
    await post(router, f"/api/v1/tasks/{again_task['task_id']}/sign-for", me)
    await post(router, f"/api/v1/tasks/{again_task['task_id']}/resolve", me, {"outcome": "再次解决"})
    assert await archive_now(router) >= 1
    copy = await store.archive.find_one({"_id": case_id})
    assert copy is not None and copy["version"] > back["version"]
    assert await store.cases.find_one({"_id": case_id}) is None
    assert (await router.stored_case(case_id)).outcome == "再次解决"


async def test_a_replayed_help_request_of_an_archived_case_is_not_dispatched_again(router: RouterHarness) -> None:
    long_ago = datetime.now(UTC) - timedelta(days=30)
    case_id, _ = await resolved_case(router, received_at=long_ago)
    request_events = [e for e in await router.events(case_id) if e["type"] == "case.dispatched"]
    assert len(request_events) == 1
    assert await archive_now(router) >= 1

    stored = await router.service.store.archive.find_one({"_id": case_id})
    assert stored is not None
    replay = help_requested(case_id, "housing_aid", received_at=long_ago)
    replay = replay.model_copy(update={"event_id": stored["request_event_id"]})  # the very same request

    await router.send_help(replay)

    async def republished() -> list[dict] | None:
        found = [e for e in await router.events(case_id) if e["type"] == "case.dispatched"]
        return found if len(found) == 2 else None

    dispatches = await eventually(republished, timeout=30, what="the replayed request's events republished")
    assert {e["event_id"] for e in dispatches} == {request_events[0]["event_id"]}  # as they were, not anew
    assert await router.service.store.cases.find_one({"_id": case_id}) is None  # not opened again


async def test_archiving_at_the_same_moment_as_a_change_loses_neither(router: RouterHarness) -> None:
    import asyncio

    from services.router.domain.dispatching import reopen

    service = router.service
    for round_ in range(4):
        case_id, _ = await resolved_case(router)

        def reopened(case: Case, n: int = round_, case_id: str = case_id) -> bool:
            return reopen(
                case,
                service.catalogue,
                event_id=f"reopen-{case_id}-{n}",
                actor="test",
                reason="回访不满意",
                now=utcnow(),
            )

        change = service.update(case_id, reopened)
        await asyncio.gather(archive_now(router), change)
        live = await service.store.cases.find_one({"_id": case_id})
        assert live is not None, f"round {round_}: the reopened case is missing from the working set"
        case = await service.store.get(case_id)
        assert case is not None and case.status == "dispatched" and case.hop == 2


async def test_a_case_numbered_within_the_archive_age_is_never_looked_for_in_the_archive(
    router: RouterHarness, mongodb_url: str
) -> None:
    """The archive holds the whole history, and FerretDB scans it all for a lookup by id: reads by id ask
    the write path's rule (`Aggregates.may_be_archived`) first, as writes do."""
    from pymongo import AsyncMongoClient

    from common.store import CommandCounter
    from services.router.store import RouterStore

    case_id, _ = await resolved_case(router)
    service = router.service
    service.cases.archive_after = timedelta(seconds=service.settings.archive_after_s)  # others here set 0
    assert service.cases.archive_after >= timedelta(days=1)
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        store = RouterStore(client[service.store.db.name])
        store.may_be_archived = service.store.may_be_archived  # as CaseService wired its own
        recent_missing, old_missing = new_case_id(), new_case_id(on=(utcnow() - timedelta(days=400)).date())

        assert (await store.get(case_id)) is not None
        assert await store.get(recent_missing) is None
        assert await store.first_dispatch(recent_missing) == (None, [])
        assert await store.archived([case_id, recent_missing]) == set()
        assert not [key for key in counter.seconds if key[1] == "cases_archive"], dict(counter.seconds)

        assert await store.get(old_missing) is None  # an old number may be archived: it is looked for
        assert ("find", "cases_archive") in counter.seconds
    finally:
        await client.close()
