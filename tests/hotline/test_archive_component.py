"""Finished intake records leave the working set (which FerretDB scans for every status update) for the
archive, with their search entries: still found by case number, by search and by the caller's phone, and
brought back, entries and all, when an event for the case arrives."""

from __future__ import annotations

from datetime import timedelta

import pytest

from contracts.events.relief import GrantPaid
from contracts.events.router import CaseResolved
from services.hotline.domain.search import CaseFilter
from services.hotline.store import kept_entries
from tests.hotline.conftest import Harness
from tests.hotline.test_status_component import dispatched, status_of

pytestmark = pytest.mark.component


async def finished_case(harness: Harness) -> str:
    """A call dispatched, resolved and called back (satisfied): nothing more is expected of it."""
    case_id = (await harness.take(caller={"name": "赵六", "phone": "13900001111"}))["case_id"]
    await harness.deliver(dispatched(case_id))
    await harness.deliver(CaseResolved(case_id=case_id, actor="w1", outcome="已帮扶"))
    response = await harness.client.post(
        f"/api/v1/cases/{case_id}/callbacks", json={"satisfaction": "satisfied"}, headers=harness.headers()
    )
    assert response.status_code == 201, response.text
    return case_id


async def test_a_finished_case_is_archived_and_still_found_everywhere(harness: Harness) -> None:
    store = harness.hotline.store
    done = await finished_case(harness)
    waiting = (await harness.take())["case_id"]  # dispatched, not resolved: stays
    await harness.deliver(dispatched(waiting))

    assert await store.records.archive_finished() == 0  # changed just now: younger than ARCHIVE_AFTER_S
    store.records.archive_after = timedelta(0)  # as if it had passed
    assert await store.records.archive_finished() == 1
    assert await store.intakes.find_one({"_id": done}) is None
    assert await store.intakes_archive.find_one({"_id": done}) is not None
    assert await store.intakes.find_one({"_id": waiting}) is not None
    index = store.search_index
    assert await index.entries.find_one({"_id": done}) is None
    assert await index.entries_archive.find_one({"_id": done}) is not None

    case = await harness.client.get(f"/api/v1/cases/{done}", params={"reason": "回访核实"}, headers=harness.headers())
    assert case.status_code == 200 and case.json()["case_id"] == done
    assert (await status_of(harness, done))["status"] == "resolved"
    found, _ = await store.search(CaseFilter(name="赵六"), skip=0, limit=10)
    assert [e["_id"] for e in found] == [done]
    found, _ = await store.search(CaseFilter(statuses=("resolved",)), skip=0, limit=10)
    assert [e["_id"] for e in found] == [done]
    by_phone = await harness.client.get(
        "/api/v1/cases", params={"phone": "13900001111", "reason": "来电核实"}, headers=harness.headers()
    )
    assert by_phone.status_code == 200 and [c["case_id"] for c in by_phone.json()] == [done]
    recent = await store.recent(limit=10)
    assert {d["_id"] for d in recent} == {done, waiting}


async def test_an_event_for_an_archived_case_brings_it_back_with_its_search_entries(harness: Harness) -> None:
    store = harness.hotline.store
    done = await finished_case(harness)
    store.records.archive_after = timedelta(0)
    assert await store.records.archive_finished() == 1
    archived = await store.intakes_archive.find_one({"_id": done})
    assert archived is not None
    events_before = len(kept_entries(archived))

    paid = GrantPaid(
        case_id=done,
        grant_id="g-late",
        rule_id="P5.2c",
        district="500103",
        amount_yuan="800",
        payment_reference="bank-1",
    )
    await harness.deliver(paid, paid)  # redelivered in the same batch: kept once
    back = await store.intakes.find_one({"_id": done})
    assert back is not None and len(kept_entries(back)) == events_before + 1
    assert back["event"]["caller"]["name"] == "赵六"  # the whole call came back, not only the record
    status = await status_of(harness, done)
    assert status["status"] == "resolved" and any(h["type"] == "grant.paid" for h in status["history"])
    # Archived again later, the archive's copy is the new one.
    assert await store.records.archive_finished() == 1
    again = await store.intakes_archive.find_one({"_id": done})
    assert again is not None and len(kept_entries(again)) == events_before + 1
    found, _ = await store.search(CaseFilter(name="赵六"), skip=0, limit=10)
    assert [e["_id"] for e in found] == [done]


async def test_a_status_change_of_an_archived_case_moves_its_search_entries_back(harness: Harness) -> None:
    from contracts.events.hotline import CaseReopened

    store = harness.hotline.store
    index = store.search_index
    done = await finished_case(harness)
    store.records.archive_after = timedelta(0)
    assert await store.records.archive_finished() == 1
    assert await index.entries_archive.find_one({"_id": done}) is not None

    await harness.deliver(CaseReopened(case_id=done, operator_id="op-2", reason="来电人反映问题未解决"))
    assert (await status_of(harness, done))["status"] == "reopened"
    await index.settle()  # the search entries' status follows the batch
    entry = await index.entries.find_one({"_id": done})
    assert entry is not None and entry["status"] == "reopened"
    assert await index.entries_archive.find_one({"_id": done}) is None
    found, _ = await store.search(CaseFilter(statuses=("reopened",)), skip=0, limit=10)
    assert [e["_id"] for e in found] == [done]
    assert await store.records.archive_finished() == 0  # reopened: not finished
