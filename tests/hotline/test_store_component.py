"""The hotline's intake records under concurrent writers (FerretDB applies updates read-then-write)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from contracts.events.relief import GrantProposed
from contracts.events.router import Assignment, CaseDispatched, Decision
from services.hotline.store import HotlineStore, kept_entries
from tests.support.events import help_requested

pytestmark = pytest.mark.component


def proposed(case_id: str, grant_id: str) -> GrantProposed:
    return GrantProposed(
        case_id=case_id, grant_id=grant_id, rule_id="P5.2a", district="500103", amount_yuan=Decimal(0), period="once"
    )


async def test_events_arriving_at_once_from_several_topics_are_all_kept(db) -> None:
    """Lifecycle, grant and SLA events of one case handled concurrently: none is lost, none doubled."""
    store = HotlineStore(db, pepper="test-pepper")
    case_id = "CQ-20260215-000001"
    await store.claim_intake(help_requested(case_id))
    events = [proposed(case_id, f"g-{i}") for i in range(12)]
    kept = await asyncio.gather(
        *(store.record_event(event) for event in events),
        *(store.record_event(events[0]) for _ in range(4)),
    )
    assert sum(kept) == 12  # each event once; the four redeliveries of the first change nothing
    intake = await store.get_intake(case_id)
    assert intake is not None
    assert sorted(e["event_id"] for e in kept_entries(intake)) == sorted(str(e.event_id) for e in events)


async def test_status_refreshed_while_events_arrive_loses_no_event(db) -> None:
    store = HotlineStore(db, pepper="test-pepper")
    case_id = "CQ-20260215-000002"
    await store.claim_intake(help_requested(case_id))
    dispatched = CaseDispatched(
        case_id=case_id,
        district="500103",
        lead=Assignment(department="civil_affairs", district="500103", role="lead"),
        needs=("other",),
        sla_class="standard",
        decision=Decision(rule_ids=("R-FALLBACK",)),
        occurred_at=datetime.now(UTC),
    )
    await asyncio.gather(
        store.record_event(dispatched),
        *(store.refresh_status(case_id) for _ in range(5)),
        *(store.record_event(proposed(case_id, f"g-{i}")) for i in range(5)),
    )
    status = await store.refresh_status(case_id)
    intake = await store.get_intake(case_id)
    assert intake is not None
    assert len(kept_entries(intake)) == 6
    assert status is not None and status.status == "dispatched"
    assert intake["status"]["status"] == "dispatched"


async def calls_from_one_phone(store: HotlineStore, count: int) -> list[str]:
    """`count` calls of one caller, a second apart, taken and filed under the caller's keys; their case ids."""
    cases = [f"CQ-20260215-{n:06d}" for n in range(1, count + 1)]
    for n, case_id in enumerate(cases):
        event = help_requested(case_id, received_at=datetime(2026, 2, 15, 1, 0, n, tzinfo=UTC))
        await store.claim_intake(event)
        await store.index_caller(case_id, store.keys_of(event))
    return cases


async def test_a_phone_with_many_open_cases_is_matched_a_page_at_a_time(db) -> None:
    """P2.2 (a community worker reporting household after household): a phone with 45 earlier cases, the
    newest closed. The call is shown its newest open cases, MAX_MATCHES of them. They are read a page at a
    time, so a phone with hundreds of cases costs each call a page, not all of them."""
    from services.hotline.store import MAX_MATCHES

    store = HotlineStore(db, pepper="test-pepper")
    cases = await calls_from_one_phone(store, 45)
    closed = cases[-5:]  # the five newest
    for case_id in closed:
        await db["intakes"].update_one({"_id": case_id}, {"$set": {"status.status": "closed"}})
    reads: list[int] = []
    reader = HotlineStore(db, pepper="test-pepper")  # another process: it remembers none of these records
    unwrapped = reader._intakes

    async def counted(case_ids: list[str], **kwargs: bool) -> list[dict]:
        reads.append(len(case_ids))
        return await unwrapped(case_ids, **kwargs)

    reader._intakes = counted  # type: ignore[method-assign]
    keys = store.keys_of(help_requested("CQ-20260215-000046"))
    found = await reader.open_cases_matching(keys, exclude="CQ-20260215-000046")
    assert [d["_id"] for d in found] == list(reversed(cases[-5 - MAX_MATCHES : -5]))  # the newest open ones
    assert all(d["matched_on"] == ["phone"] for d in found)
    assert reads == [MAX_MATCHES, MAX_MATCHES]


async def test_a_phone_calling_again_and_again_has_the_cases_this_process_just_wrote_matched_without_reads(
    db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The records this process wrote moments ago (taken, or changed by a status event) are matched from its
    memory, with the status it wrote; only those it does not remember are read from the store."""
    from contracts.events.router import CaseClosed
    from services.hotline import store as store_module

    store = HotlineStore(db, pepper="test-pepper")
    cases = await calls_from_one_phone(store, 12)
    closing = CaseClosed(case_id=cases[-1], actor="w1")
    await store.apply_events([(cases[-1], str(closing.event_id), closing)])  # through this process's write path
    store.records.forget(cases[0])  # one it no longer remembers (its memory is bounded in size and age)
    asked: list[str] = []
    real_find = store_module.find_with_archive

    async def counted_find(live, archive, ids, *args, **kwargs):
        asked.extend(ids)
        return await real_find(live, archive, ids, *args, **kwargs)

    monkeypatch.setattr(store_module, "find_with_archive", counted_find)
    keys = store.keys_of(help_requested("CQ-20260215-000013"))
    found = await store.open_cases_matching(keys, exclude="CQ-20260215-000013")
    assert [d["_id"] for d in found] == list(reversed(cases[:-1]))  # the closed one is left out
    assert asked == [cases[0]]  # read: only the one not remembered
    assert all("events" not in d and "events_packed" not in d for d in found)
    assert all(d["matched_on"] == ["phone"] for d in found)


async def test_a_record_keeps_its_events_packed_and_one_written_before_keeps_its_own_list(db) -> None:
    """Every status update rewrites a record's events, and FerretDB decodes every field of what it rewrites:
    they are stored as one packed value. A record written before that, its events as a list, is read as
    it is and packed at its next change, with none of its events lost."""
    store = HotlineStore(db, pepper="test-pepper")
    case_id = "CQ-20260215-000003"
    await store.claim_intake(help_requested(case_id))
    await store.record_event(proposed(case_id, "g-1"))
    stored = await db["intakes"].find_one({"_id": case_id})
    assert stored["events"] == [] and isinstance(stored["events_packed"], bytes)
    assert [e["grant_id"] for e in kept_entries(stored)] == ["g-1"]

    older = "CQ-20260215-000004"
    await store.claim_intake(help_requested(older))
    first = proposed(older, "g-old")
    entry = {**first.model_dump(mode="json"), "_arrived_at": datetime.now(UTC)}
    await db["intakes"].update_one({"_id": older}, {"$set": {"events": [entry]}, "$unset": {"events_packed": ""}})
    reader = HotlineStore(db, pepper="test-pepper")  # another process: nothing remembered
    assert await reader.record_event(first) is False  # already kept, in the list
    assert await reader.record_event(proposed(older, "g-new")) is True
    stored = await db["intakes"].find_one({"_id": older})
    assert stored["events"] == [] and [e["grant_id"] for e in kept_entries(stored)] == ["g-old", "g-new"]
