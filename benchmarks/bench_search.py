"""Case search and the callbacks worklist on the real store, with N intake records filed through the
hotline's own store code (`HotlineStore.claim_intake` and `index_intake`, concurrent calls sharing their inserts).

Prints p50/p95 latency of typical searches through the search index (`HotlineStore.search`): by phone,
by part of a name, by part of an address, a district with a status, a date range, the newest page with no
filter, a deep page; beside each, the same search as one query over the intake records (what the search
did before the index: regex, ranges, `$in`/`$or` and a sort, which FerretDB decodes in Go over the whole
collection) and the ratio; then the callbacks due and an idempotent run of the index's backfill.

    python -m benchmarks search                      # N = 20,000
    BENCH_SEARCH_COUNT=5000 python -m benchmarks search
    BENCH_SEARCH_SCAN_SAMPLES=0 BENCH_SEARCH_COUNT=100000 python -m benchmarks search   # no scan beside
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import AsyncMongoClient

from benchmarks.support import BenchSettings
from contracts.events.hotline import Caller, HelpRequested, Place
from services.hotline.domain import lookup_key
from services.hotline.domain.callback import resolved_by_for_due_list
from services.hotline.domain.search import CaseFilter, received_range
from services.hotline.store import HotlineStore

PEPPER = "bench-pepper"
SAMPLES = int(os.environ.get("BENCH_SEARCH_SAMPLES", "10"))
SCAN_SAMPLES = int(os.environ.get("BENCH_SEARCH_SCAN_SAMPLES", "2"))  # the intake-record scan beside (slow)
CONCURRENT = 500  # calls in flight while loading (their inserts are shared)
DISTRICTS = ("500101", "500102", "500103", "500104", "500105", "500106", "500107", "500108")
NEEDS = ("temp_assist_major", "homeless_cold", "special_group_visit", "temp_assist_unemployed")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
START = datetime(2026, 1, 1, tzinfo=UTC)


def phone(n: int) -> str:
    return f"139{n:08d}"


def intake(n: int) -> HelpRequested:
    rng = random.Random(n)
    case_id = f"CQ-{(START + timedelta(minutes=5 * n)).strftime('%Y%m%d')}-{n + 1:06d}"
    return HelpRequested(
        case_id=case_id,
        correlation_id=case_id,
        received_at=START + timedelta(minutes=5 * n),
        operator_id="bench",
        caller=Caller(name=rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN), phone=phone(n)),
        place=Place(district=rng.choice(DISTRICTS), township="某某街道", address=f"幸福路 {n} 号"),
        needs=(rng.choice(NEEDS),),
        emergency=rng.random() < 0.1,
        description="来电人反映家庭生活困难，需要帮助" * 3,
    )


async def _take(store: HotlineStore, event: HelpRequested) -> None:
    """A call as the intake files it: its record, then its search entry."""
    await store.claim_intake(event)
    await store.index_intake(event)


def scan_query(f: CaseFilter) -> dict[str, Any]:
    """The search as one query over the intake records, as it was before the search index."""
    query: dict[str, Any] = {}
    if f.case_id:
        query["_id"] = f.case_id if len(f.case_id) == 18 else {"$regex": f"^{re.escape(f.case_id)}"}
        if len(f.case_id) >= 11:
            query["day"] = f.case_id[3:11]
    if f.day and "day" not in query:
        query["day"] = f.day
    for field, value in (("phone_key", f.phone_key), ("district", f.district), ("emergency", f.emergency)):
        if value is not None:
            query[field] = value
    if f.needs:
        query["needs"] = f.needs[0] if len(f.needs) == 1 else {"$in": list(f.needs)}
    if f.statuses:
        query["status_code"] = f.statuses[0] if len(f.statuses) == 1 else {"$in": list(f.statuses)}
    if f.received_from or f.received_before:
        bounds = (("$gte", f.received_from), ("$lt", f.received_before))
        query["received_at"] = {op: at for op, at in bounds if at}
    if f.name:
        query["event.caller.name"] = {"$regex": re.escape(f.name)}
    if f.address:
        text = {"$regex": re.escape(f.address)}
        query["$or"] = [{"event.place.address": text}, {"event.place.township": text}]
    return query


async def scan(db: Any, f: CaseFilter, skip: int, limit: int) -> list[str]:
    fields = {"received_at": 1, "district": 1, "needs": 1, "emergency": 1, "status": 1, "event.caller": 1}
    cursor = db["intakes"].find(scan_query(f), fields).sort([("received_at", -1), ("_id", -1)])
    return [d["_id"] for d in await cursor.skip(skip).limit(limit + 1).to_list()][:limit]


async def timed(probe: Any, samples: int = SAMPLES) -> list[float]:
    seconds = []
    for _ in range(samples):
        started = time.perf_counter()
        await probe()
        seconds.append(time.perf_counter() - started)
    return seconds


def p95(seconds: list[float]) -> float:
    ms = sorted(s * 1000 for s in seconds)
    return ms[max(0, int(len(ms) * 0.95) - 1)]


def report(label: str, seconds: list[float], rows: int, before: list[float] | None = None) -> None:
    p50 = statistics.median(seconds)
    line = f"  {label:<32} p50 {p50 * 1000:8.1f} ms   p95 {p95(seconds):8.1f} ms   rows {rows:>3}"
    if before:
        was = statistics.median(before)
        line += f"   | scan p50 {was * 1000:9.1f} ms  ({was / p50:5.0f}x)"
    print(line, flush=True)


async def compare(db: Any, store: HotlineStore, label: str, wanted: CaseFilter, skip: int = 0) -> None:
    """The search through the index, and (when SCAN_SAMPLES) the old scan beside it, same results."""
    found = [e["_id"] for e in (await store.search(wanted, skip=skip, limit=20))[0]]
    before = None
    if SCAN_SAMPLES:
        scanned = await scan(db, wanted, skip, 20)
        if scanned != found:
            raise AssertionError(f"{label}: the index found {found[:3]}..., the scan {scanned[:3]}...")
        before = await timed(lambda: scan(db, wanted, skip, 20), SCAN_SAMPLES)
    report(label, await timed(lambda: store.search(wanted, skip=skip, limit=20)), len(found), before)


async def main(settings: BenchSettings) -> None:
    count = int(os.environ.get("BENCH_SEARCH_COUNT", "20000"))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    name = f"bench_search_{uuid.uuid4().hex[:8]}"
    db = client[name]
    try:
        store = HotlineStore(db, pepper=PEPPER)
        await store.ensure_indexes()
        started = time.perf_counter()
        for first in range(0, count, CONCURRENT):
            await asyncio.gather(*(_take(store, intake(n)) for n in range(first, min(count, first + CONCURRENT))))
        print(f"  loaded {count} intakes in {time.perf_counter() - started:.1f} s", flush=True)
        # A few resolved cases awaiting their callback (as the status projection leaves them).
        resolved = [f"CQ-{(START + timedelta(minutes=5 * n)).strftime('%Y%m%d')}-{n + 1:06d}" for n in range(0, 200, 4)]
        await db["intakes"].update_many(
            {"_id": {"$in": resolved}},
            {"$set": {"awaiting_callback": True, "resolved_at": datetime.now(UTC) - timedelta(days=4)}},
        )
        last_day = (START + timedelta(minutes=5 * count)).date()
        searches: dict[str, CaseFilter] = {
            "phone (exact, keyed hash)": CaseFilter(phone_key=lookup_key(PEPPER, "phone", phone(count // 2))),
            "part of a name": CaseFilter(name="王伟"),
            "part of an address": CaseFilter(address=f"幸福路 {count // 3} "),
            "district + status": CaseFilter(district="500103", statuses=("received",)),
            "district + need + emergency": CaseFilter(district="500106", needs=("homeless_cold",), emergency=True),
            "one received day": CaseFilter(
                received_from=received_range(last_day - timedelta(days=3), None)[0],
                received_before=received_range(None, last_day - timedelta(days=3))[1],
                day=(last_day - timedelta(days=3)).strftime("%Y%m%d"),
            ),
            "case number's beginning": CaseFilter(case_id=f"CQ-{(last_day - timedelta(days=1)).strftime('%Y%m%d')}"),
            "no filter, newest page": CaseFilter(),
        }
        print(
            f"  {count} intakes; page size 20; {SAMPLES} runs each through the search index"
            + (f", {SCAN_SAMPLES} of the scan beside (the same rows checked):" if SCAN_SAMPLES else ":"),
            flush=True,
        )
        for label, wanted in searches.items():
            await compare(db, store, label, wanted)
        await compare(db, store, "district, page 10", CaseFilter(district="500103"), skip=180)
        resolved_by = resolved_by_for_due_list(datetime.now(UTC), 72, upcoming=False)

        async def due() -> Any:
            return await store.awaiting_callbacks(resolved_by=resolved_by, district=None, skip=0, limit=50)

        report("callbacks due (50 awaiting)", await timed(due), len((await due())[0]))
        started = time.perf_counter()
        added, updated = await store.search_index.backfill(db["intakes"])
        took = time.perf_counter() - started
        print(f"  backfill with every entry filed: {took:.1f} s ({added} added, {updated} updated)", flush=True)
    finally:
        await client.drop_database(name)
        await client.close()
