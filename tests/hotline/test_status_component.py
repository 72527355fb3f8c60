"""Caller-facing status from downstream events, follow-ups, merges and callbacks (component)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from contracts.events.notify import SlaWarningRaised
from contracts.events.relief import GrantPaid
from contracts.events.router import Assignment, CaseDispatched, CaseResolved, CaseSignedFor, CasesMerged, Decision
from tests.hotline.conftest import Harness

pytestmark = pytest.mark.component


def dispatched(case_id: str, department: str = "civil_affairs") -> CaseDispatched:
    return CaseDispatched(
        case_id=case_id,
        district="500103",
        lead=Assignment(department=department, district="500103", role="lead"),
        needs=("temp_assist_major",),
        sla_class="standard",
        decision=Decision(rule_ids=("R-TEST",)),
    )


async def status_of(harness: Harness, case_id: str) -> dict:
    response = await harness.client.get(f"/api/v1/cases/{case_id}/status", headers=harness.headers())
    assert response.status_code == 200, response.text
    return response.json()


async def test_status_follows_router_relief_and_sla_events(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    assert (await status_of(harness, case_id))["status"] == "received"
    await harness.deliver(dispatched(case_id))
    due = datetime.now(UTC) + timedelta(days=3)
    await harness.deliver(
        SlaWarningRaised(
            case_id=case_id,
            clock="citizen",
            target="resolution",
            district="500103",
            due_at=due,
            sla_class="standard",
            share_elapsed=0.5,
        )
    )
    status = await status_of(harness, case_id)
    assert status["status"] == "dispatched" and status["agency"]["name_zh"] == "渝中区民政部门"
    assert datetime.fromisoformat(status["expected_at"].replace("Z", "+00:00")) == due
    await harness.deliver(CaseSignedFor(case_id=case_id, task_id=f"{case_id}:civil_affairs", actor="w1"))
    await harness.deliver(
        GrantPaid(
            case_id=case_id,
            grant_id="g1",
            rule_id="P5.2c",
            district="500103",
            amount_yuan="1500",
            payment_reference="PAY-1",
        )
    )
    status = await status_of(harness, case_id)
    assert status["status"] == "in_progress" and "1500" in status["history"][-1]["text_zh"]


async def test_a_redelivered_event_changes_nothing(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    event = dispatched(case_id)
    await harness.deliver(event)
    await harness.deliver(event)
    status = await status_of(harness, case_id)
    assert [h["type"] for h in status["history"]] == ["hotline.help_requested", "case.dispatched"]


async def test_a_batch_of_events_for_many_cases_is_kept_once_in_a_bounded_number_of_round_trips(
    harness: Harness, mongodb_url: str
) -> None:
    """The status consumer's batch: several cases, each with several events, one redelivered within the
    batch and one of a case this hotline never took; the store sees a fixed number of commands for it."""
    from types import SimpleNamespace

    from common.aggregates import SWEEP_CHECKPOINTS
    from common.store import CommandCounter, open_mongo, serves_queries_from_indexes
    from services.hotline.handlers import apply_downstream_events
    from services.hotline.store import HotlineStore

    cases = [(await harness.take())["case_id"] for _ in range(5)]
    batch = []
    for case_id in cases:
        first = dispatched(case_id)
        batch += [first, CaseSignedFor(case_id=case_id, task_id=f"{case_id}:civil_affairs", actor="w1"), first]
    batch.append(dispatched("CQ-20200101-000001"))
    records = [SimpleNamespace(topic=event.TOPIC, value=event.model_dump_json().encode()) for event in batch]

    counter = CommandCounter()
    client = open_mongo(harness.runtime.settings.model_copy(update={"mongodb_url": mongodb_url}), counter=counter)
    try:
        store = HotlineStore(client[harness.db.name], pepper=harness.hotline.pepper, archive_after=timedelta(days=7))
        assert await apply_downstream_events(store, records) == []
        await store.search_index.settle()  # the statuses' rewrite follows the batch
        commands = counter.by_command(without={SWEEP_CHECKPOINTS})  # made sure of once a process
    finally:
        await client.close()
    # read all (one `$in` on MongoDB; one equality query per case on FerretDB, which decodes the whole
    # collection for a `$in`), claim all, write all, and then rewrite the search index's statuses (one bulk write);
    # of the archive, only the case numbered in 2020 is asked for (today's cases cannot be archived yet)
    reads = (1 if await serves_queries_from_indexes(harness.db) else len(cases) + 1) + 1
    commands.pop("buildInfo", None)
    assert commands == {"find": reads, "insert": 1, "update": 2}
    for case_id in cases:
        status = await status_of(harness, case_id)
        assert status["status"] == "signed_for"
        assert [h["type"] for h in status["history"]] == [
            "hotline.help_requested",
            "case.dispatched",
            "case.signed_for",
        ]


async def test_events_of_cases_this_hotline_never_took_are_ignored(harness: Harness) -> None:
    await harness.deliver(dispatched("CQ-20200101-000001"))
    assert await harness.db["intakes"].count_documents({}) == 0


async def test_callback_comes_after_resolution_and_dissatisfied_reopens_the_case(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    early = await harness.client.post(
        f"/api/v1/cases/{case_id}/callbacks", json={"satisfaction": "satisfied"}, headers=harness.headers()
    )
    assert early.status_code == 409 and early.json()["code"] == "not_resolved"
    await harness.deliver(dispatched(case_id))
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="已发放临时救助"))
    response = await harness.client.post(
        f"/api/v1/cases/{case_id}/callbacks",
        json={"satisfaction": "dissatisfied", "note": "钱还没到账"},
        headers=harness.headers(),
    )
    assert response.status_code == 201 and response.json()["reopened"] is True
    assert harness.published_types(case_id)[-2:] == ["hotline.callback_recorded", "hotline.case_reopened"]
    reopened = next(b for b in harness.published if b["type"] == "hotline.case_reopened")
    assert "H-CALLBACK-REOPEN" in reopened["reason"] and "钱还没到账" in reopened["reason"]
    status = await status_of(harness, case_id)
    assert (status["status"], status["satisfaction"], status["reopened_times"]) == ("reopened", "dissatisfied", 1)


async def test_satisfied_callback_does_not_reopen(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="done"))
    response = await harness.client.post(
        f"/api/v1/cases/{case_id}/callbacks", json={"satisfaction": "satisfied"}, headers=harness.headers()
    )
    assert response.json()["reopened"] is False and "hotline.case_reopened" not in harness.published_types(case_id)


async def test_a_repeat_call_is_attached_to_the_open_case_as_a_follow_up(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    response = await harness.client.post(
        f"/api/v1/cases/{case_id}/follow-ups", json={"note": "来电人催问进度"}, headers=harness.headers()
    )
    assert response.status_code == 201 and response.json()["follow_ups"] == 1
    assert harness.published_types(case_id)[-1] == "hotline.follow_up_attached"
    assert await harness.db["intakes"].count_documents({}) == 1  # no new case opened


async def test_merges_keep_child_links_and_follow_ups_go_to_the_surviving_case(harness: Harness) -> None:
    parent = (await harness.take())["case_id"]
    child = (await harness.take())["case_id"]
    await harness.deliver(CasesMerged(case_id=child, into_case_id=parent, actor="w1"))
    assert (await status_of(harness, child))["merged_into"] == parent
    assert (await status_of(harness, parent))["children"] == [child]
    response = await harness.client.post(
        f"/api/v1/cases/{child}/follow-ups", json={"note": "又打来了"}, headers=harness.headers()
    )
    assert response.json()["case_id"] == parent
    matches = await harness.client.post(
        "/api/v1/help-requests/matches", json={"phone": "13812345678"}, headers=harness.headers()
    )
    assert [m["case_id"] for m in matches.json()] == [parent]  # the merged child is no longer open


async def test_an_unknown_event_type_shows_as_an_update_and_a_bad_record_is_dead_lettered(harness: Harness) -> None:
    """Records are read by their contract topic (a deployment's namespace mapped back); a type added later
    is kept, one that is not an event of the topic goes to the dead-letter topic."""
    import json
    from types import SimpleNamespace

    from contracts.events import CASE_LIFECYCLE_TOPIC
    from services.hotline.handlers import apply_downstream_events

    case_id = (await harness.take())["case_id"]
    topic = "ns." + CASE_LIFECYCLE_TOPIC
    later = {"type": "case.something_new", "case_id": case_id, "event_id": "e-1", "occurred_at": "2030-01-01T00:00:00Z"}
    incomplete = json.loads(dispatched(case_id).model_dump_json())
    del incomplete["lead"]
    records = [
        SimpleNamespace(topic=topic, value=json.dumps(later).encode()),
        SimpleNamespace(topic=topic, value=b"not json"),
        SimpleNamespace(topic=topic, value=json.dumps(incomplete).encode()),
    ]
    rejected = await apply_downstream_events(harness.hotline.store, records, {topic: CASE_LIFECYCLE_TOPIC})
    assert [record for record, _ in rejected] == records[1:]
    status = await status_of(harness, case_id)
    assert status["status"] == "received" and status["history"][-1]["type"] == "case.something_new"


async def test_one_callback_per_resolution_and_a_reopened_case_resolved_again_takes_a_new_one(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    url, headers = f"/api/v1/cases/{case_id}/callbacks", harness.headers()
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="done"))
    first = await harness.client.post(url, json={"satisfaction": "satisfied"}, headers=headers)
    assert first.status_code == 201 and (await status_of(harness, case_id))["called_back"] is True
    again = await harness.client.post(url, json={"satisfaction": "dissatisfied", "note": "x"}, headers=headers)
    assert again.status_code == 409 and again.json()["code"] == "already_called_back"
    assert "已回访" in again.json()["message_zh"] and "already" in again.json()["message_en"]
    assert harness.published_types(case_id).count("hotline.callback_recorded") == 1


async def test_a_case_reopened_at_its_callback_takes_a_new_one_once_resolved_again(harness: Harness) -> None:
    case_id = (await harness.take())["case_id"]
    url, headers = f"/api/v1/cases/{case_id}/callbacks", harness.headers()
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="done"))
    reopening = await harness.client.post(url, json={"satisfaction": "dissatisfied"}, headers=headers)
    assert reopening.status_code == 201 and reopening.json()["reopened"] is True
    while_reopened = await harness.client.post(url, json={"satisfaction": "satisfied"}, headers=headers)
    assert while_reopened.status_code == 409 and while_reopened.json()["code"] == "not_resolved"
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="fixed"))
    assert (await status_of(harness, case_id))["called_back"] is False
    second = await harness.client.post(url, json={"satisfaction": "satisfied"}, headers=headers)
    assert second.status_code == 201 and harness.published_types(case_id).count("hotline.callback_recorded") == 2
    third = await harness.client.post(url, json={"satisfaction": "satisfied"}, headers=headers)
    assert third.status_code == 409 and third.json()["code"] == "already_called_back"
