"""Search by each field finds the case: the hotline's own store code against the real store (P6.2)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from contracts.events.hotline import Caller, HelpRequested, Place
from contracts.events.router import CaseProgressRecorded, CaseResolved
from services.hotline import search_index
from services.hotline.domain import caller_keys, lookup_key
from services.hotline.domain.search import TEXT_FIELDS, CaseFilter, received_range
from services.hotline.store import HotlineStore

pytestmark = pytest.mark.integration

PEPPER = "integration-pepper"
RECEIVED = datetime(2026, 3, 9, 2, 30, tzinfo=UTC)  # 10:30 on 9 March in Chongqing


def help_request(case_id: str, **overrides: Any) -> HelpRequested:
    fields: dict[str, Any] = dict(
        case_id=case_id,
        correlation_id=case_id,
        received_at=RECEIVED,
        operator_id="op-1",
        caller=Caller(name="上官婉儿", phone="13887654321", id_card="11010519491231002X"),
        place=Place(district="500106", township="小龙坎街道", address="天陈路 88 号"),
        needs=("temp_assist_major",),
        emergency=True,
    )
    fields.update(overrides)
    return HelpRequested(**fields)


@pytest.fixture
async def store(db: AsyncDatabase[dict[str, Any]]) -> HotlineStore:
    store = HotlineStore(db, pepper=PEPPER)
    await store.ensure_indexes()
    target = help_request("CQ-20260309-000007")
    others = [
        help_request(
            "CQ-20260310-000001",
            received_at=RECEIVED + timedelta(days=1),
            caller=Caller(name="欧阳修", phone="13811112222"),
            place=Place(district="500103", address="民族路 1 号"),
            needs=("homeless_cold",),
            emergency=False,
        ),
        help_request(
            "CQ-20260301-000002",
            received_at=RECEIVED - timedelta(days=8),
            caller=Caller(name="司马光", phone="13833334444"),
            place=Place(district="500105", address="观音桥 2 号"),
            needs=("special_group_visit",),
            emergency=False,
        ),
    ]
    for event in (target, *others):
        await store.claim_intake(event)
        await store.index_intake(event)
    progress = CaseProgressRecorded(case_id=target.case_id, actor="w1", task_id="t1", note="上门核实")
    await store.apply_events([(target.case_id, str(progress.event_id), progress)])
    await store.search_index.settle()  # its status rewritten in the index (off the batch's path)
    return store


FILTERS = {
    "case number": CaseFilter(case_id="CQ-20260309-000007"),
    "case number's beginning": CaseFilter(case_id="CQ-20260309"),
    "phone": CaseFilter(phone_key=lookup_key(PEPPER, "phone", "13887654321")),
    "ID card": CaseFilter(id_card_key=lookup_key(PEPPER, "id_card", "11010519491231002X")),
    "part of the name": CaseFilter(name="婉儿"),
    "part of the address": CaseFilter(address="天陈路"),
    "the township": CaseFilter(address="小龙坎"),
    "district": CaseFilter(district="500106"),
    "need": CaseFilter(needs=("temp_assist_major",)),
    "status": CaseFilter(statuses=("in_progress",)),
    "emergency": CaseFilter(emergency=True),
    "received days": CaseFilter(
        received_from=received_range(date(2026, 3, 9), date(2026, 3, 9))[0],
        received_before=received_range(date(2026, 3, 9), date(2026, 3, 9))[1],
    ),
    "one received day": CaseFilter(day="20260309"),
    "all together": CaseFilter(
        name="上官",
        district="500106",
        phone_key=lookup_key(PEPPER, "phone", "13887654321"),
        needs=("temp_assist_major", "homeless_cold"),
        statuses=("in_progress", "resolved"),
        emergency=True,
        address="88",
        received_from=received_range(date(2026, 3, 1), None)[0],
    ),
}


@pytest.mark.parametrize("field", list(FILTERS))
async def test_search_by_each_field_finds_the_case(store: HotlineStore, field: str) -> None:
    found, more = await store.search(FILTERS[field], skip=0, limit=20)
    assert [d["_id"] for d in found] == ["CQ-20260309-000007"] and not more
    row = found[0]  # the search index entry: what a row shows, the caller masked, no clear number
    assert row["caller_name"] == "上***" and row["phone_masked"] == "138****4321" and "events" not in row
    assert "13887654321" not in str(row) and "11010519491231002X" not in str(row) and row["status"] == "in_progress"


async def test_an_empty_search_lists_every_case_newest_first(store: HotlineStore) -> None:
    found, _ = await store.search(CaseFilter(), skip=0, limit=20)
    assert [d["_id"] for d in found] == ["CQ-20260310-000001", "CQ-20260309-000007", "CQ-20260301-000002"]


async def test_a_name_with_regex_characters_is_matched_as_text(store: HotlineStore) -> None:
    assert (await store.search(CaseFilter(name=".*"), skip=0, limit=20))[0] == []


async def test_the_store_keeps_no_clear_number_to_search(store: HotlineStore) -> None:
    doc = await store.get_intake("CQ-20260309-000007")
    assert doc is not None
    keys = caller_keys(PEPPER, phone="13887654321", id_card="11010519491231002X", district=None, address=None)
    assert doc["keys"]["phone"] == keys["phone"] and doc["keys"]["id_card"] == keys["id_card"]
    assert "13887654321" not in str(doc["keys"])


WRONG = {
    "case number": CaseFilter(case_id="CQ-20260309-000008"),
    "case number's beginning": CaseFilter(case_id="CQ-20260308"),
    "phone": CaseFilter(phone_key=lookup_key(PEPPER, "phone", "13887654320")),
    "ID card": CaseFilter(id_card_key=lookup_key(PEPPER, "id_card", "110105194912310038")),
    "part of the name": CaseFilter(name="婉娘"),
    "part of the address": CaseFilter(address="天陈路 89"),
    "the township": CaseFilter(address="小龙坎街道 1"),
    "district": CaseFilter(district="500107", name="上官"),
    "need": CaseFilter(needs=("homeless_cold",), name="上官"),
    "status": CaseFilter(statuses=("resolved",)),
    "emergency": CaseFilter(emergency=False, name="上官"),
    "received days": CaseFilter(
        received_from=received_range(date(2026, 3, 8), date(2026, 3, 8))[0],
        received_before=received_range(date(2026, 3, 8), date(2026, 3, 8))[1],
        name="上官",
    ),
    "one received day": CaseFilter(day="20260308"),
}


@pytest.mark.parametrize("field", list(WRONG))
async def test_search_by_a_wrong_value_of_each_field_finds_nothing(store: HotlineStore, field: str) -> None:
    assert await store.search(WRONG[field], skip=0, limit=20) == ([], False)


async def test_a_status_change_is_found_by_the_new_status_only(store: HotlineStore) -> None:
    case_id = "CQ-20260309-000007"
    assert not (await store.search(CaseFilter(statuses=("received",), district="500106"), skip=0, limit=20))[0]
    resolved = CaseResolved(case_id=case_id, actor="w1", outcome="已救助")
    await store.apply_events([(case_id, str(resolved.event_id), resolved)])
    [row], _ = await store.search(CaseFilter(statuses=("resolved",)), skip=0, limit=20)
    assert row["_id"] == case_id and row["status"] == "resolved"
    assert (await store.search(CaseFilter(statuses=("in_progress",)), skip=0, limit=20)) == ([], False)


async def test_the_status_batch_does_not_wait_for_the_search_index_and_a_search_sees_what_it_decided(
    store: HotlineStore, db: AsyncDatabase[dict[str, Any]]
) -> None:
    """The search index's statuses are rewritten off the status consumer's path, one rewrite at a time with
    the statuses decided meanwhile going together (a case's latest wins); a search waits for them first."""
    import asyncio

    case_id = "CQ-20260309-000007"
    index = store.search_index
    held = asyncio.Event()
    rewrites: list[dict[str, str]] = []
    real_set_statuses = index.set_statuses

    async def held_set_statuses(statuses):
        rewrites.append({c: s.status for c, s in statuses.items()})
        await held.wait()
        await real_set_statuses(statuses)

    index.set_statuses = held_set_statuses  # type: ignore[method-assign]
    resolved = CaseResolved(case_id=case_id, actor="w1", outcome="已救助")
    progress = CaseProgressRecorded(case_id="CQ-20260310-000001", actor="w1", task_id="t1", note="已联系")
    await asyncio.wait_for(store.apply_events([(case_id, str(resolved.event_id), resolved)]), timeout=10)
    await asyncio.wait_for(store.apply_events([(progress.case_id, str(progress.event_id), progress)]), timeout=10)
    assert rewrites == [{case_id: "resolved"}]  # the second batch's status waits behind the first rewrite
    entry = await db["case_search"].find_one({"_id": case_id})
    assert entry is not None and entry["status"] != "resolved"
    searching = asyncio.ensure_future(store.search(CaseFilter(statuses=("resolved",)), skip=0, limit=20))
    await asyncio.sleep(0.2)
    assert not searching.done()  # a search sees what this process decided: it waits for the rewrites
    held.set()
    [row], _ = await asyncio.wait_for(searching, timeout=10)
    assert row["_id"] == case_id and row["status"] == "resolved"
    assert rewrites == [{case_id: "resolved"}, {"CQ-20260310-000001": "in_progress"}]
    [other], _ = await store.search(CaseFilter(statuses=("in_progress",), district="500103"), skip=0, limit=20)
    assert other["_id"] == "CQ-20260310-000001"


async def test_the_backfill_files_cases_taken_before_the_index_and_mends_stale_statuses(
    store: HotlineStore, db: AsyncDatabase[dict[str, Any]]
) -> None:
    """Intake records written before the search index existed are found once the backfill ran, an entry
    filed when the texts were kept apart gets them, and a stale status is mended (twice changes nothing
    more)."""
    kept = ["CQ-20260309-000007", "CQ-20260301-000002"]
    await db["case_search"].delete_many({"_id": {"$nin": kept}})
    await db["case_search_days"].delete_many({})
    await db["case_search"].update_one({"_id": kept[0]}, {"$set": {"status": "received"}})
    await db["case_search"].update_one({"_id": kept[1]}, {"$unset": dict.fromkeys(TEXT_FIELDS, "")})
    fresh = HotlineStore(db, pepper=PEPPER)  # another process: knows no day yet
    assert [d["_id"] for d in (await fresh.search(CaseFilter(), skip=0, limit=20))[0]] == []
    assert (await fresh.search(CaseFilter(name="司马"), skip=0, limit=20))[0] == []  # its texts are missing
    assert await fresh.search_index.backfill(db["intakes"]) == (2, 1)
    assert await fresh.search_index.backfill(db["intakes"]) == (0, 0)
    found, _ = await fresh.search(CaseFilter(), skip=0, limit=20)
    assert [d["_id"] for d in found] == ["CQ-20260310-000001", "CQ-20260309-000007", "CQ-20260301-000002"]
    assert [d["_id"] for d in (await fresh.search(CaseFilter(name="司马"), skip=0, limit=20))[0]] == [
        "CQ-20260301-000002"
    ]
    assert (await fresh.search(CaseFilter(statuses=("in_progress",)), skip=0, limit=20))[0][0]["_id"] == (
        "CQ-20260309-000007"
    )


@pytest.mark.parametrize(("probe", "month_most"), [(search_index.PROBE, search_index.MONTH_MOST), (4, 200), (4, 5)])
async def test_pages_are_stable_newest_first_and_bounded(
    db: AsyncDatabase[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, probe: int, month_most: int
) -> None:
    """Pages through many cases over many days of two months, whether one probe holds every match, or the
    months are read, or their days: each case once, newest first, `has_more` until the last page."""
    monkeypatch.setattr(search_index, "PROBE", probe)
    monkeypatch.setattr(search_index, "MONTH_MOST", month_most)
    store = HotlineStore(db, pepper=PEPPER)
    day = [datetime(2026, 3, 1, 1, 0, tzinfo=UTC) + timedelta(days=10 * (n // 12)) for n in range(60)]
    cases = [
        help_request(
            f"CQ-{day[n]:%Y%m%d}-{n + 1:06d}",
            received_at=day[n] + timedelta(minutes=n % 12),
            caller=Caller(name=f"王{'伟芳'[n % 2]}", phone=f"139{n:08d}"),
            place=Place(district=("500103", "500106")[n % 3 == 0], address=f"幸福路 {n} 号"),
        )
        for n in range(60)
    ]
    for event in cases:
        await store.claim_intake(event)
        await store.index_intake(event)
    for wanted, expected in (
        (CaseFilter(), cases),
        (CaseFilter(district="500106"), [c for c in cases if c.place.district == "500106"]),
        (CaseFilter(name="王伟", address="幸福"), cases[::2]),
        (CaseFilter(address="幸福路 1"), [c for c in cases if str(c.place.address).startswith("幸福路 1")]),
    ):
        seen: list[str] = []
        for page in range(1, 20):
            found, more = await store.search(wanted, skip=(page - 1) * 7, limit=7)
            seen += [d["_id"] for d in found]
            if not more:
                break
        assert seen == [c.case_id for c in reversed(expected)], wanted


async def test_the_first_start_on_a_database_backfills_once(
    store: HotlineStore, db: AsyncDatabase[dict[str, Any]]
) -> None:
    await db["case_search"].delete_many({})
    await db["case_search_text"].insert_one({"_id": "CQ-20260301-000002"})  # the index of texts kept apart before
    await store.search_index.backfill_once(db["intakes"], db["intakes_archive"], db["counters"])
    assert len((await store.search(CaseFilter(), skip=0, limit=20))[0]) == 3
    assert not set(search_index.RETIRED) & set(await db.list_collection_names())  # folded in, and dropped
    await db["case_search"].delete_many({"_id": "CQ-20260301-000002"})
    await store.search_index.backfill_once(
        db["intakes"], db["intakes_archive"], db["counters"]
    )  # done before: not again
    assert len((await store.search(CaseFilter(), skip=0, limit=20))[0]) == 2
