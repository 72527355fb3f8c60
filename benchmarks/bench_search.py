"""Case search and the callbacks worklist on the real store, with N intake records filed through the
hotline's own store code (`HotlineStore.claim_intake`, concurrent calls sharing their inserts).

Prints p50/p95 latency of typical searches (one store query per page each): by phone, by ID-card, by part
of a name, by part of an address, a district with a status, a date range, the newest page with no filter,
a deep page, and the callbacks due.

    python -m benchmarks search                      # N = 20,000
    BENCH_SEARCH_COUNT=5000 python -m benchmarks search
"""

from __future__ import annotations

import asyncio
import os
import random
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


async def timed(probe: Any) -> list[float]:
    seconds = []
    for _ in range(SAMPLES):
        started = time.perf_counter()
        await probe()
        seconds.append(time.perf_counter() - started)
    return seconds


def report(label: str, seconds: list[float], rows: int) -> None:
    ms = sorted(s * 1000 for s in seconds)
    p95 = ms[max(0, int(len(ms) * 0.95) - 1)]
    print(f"  {label:<44} p50 {statistics.median(ms):8.1f} ms   p95 {p95:8.1f} ms   rows {rows}", flush=True)


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
            await asyncio.gather(*(store.claim_intake(intake(n)) for n in range(first, min(count, first + CONCURRENT))))
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
        print(f"  {count} intakes; {SAMPLES} runs each, page size 20 (one query per page):", flush=True)
        for label, wanted in searches.items():
            rows = len((await store.search(wanted, skip=0, limit=20))[0])
            report(label, await timed(lambda wanted=wanted: store.search(wanted, skip=0, limit=20)), rows)
        deep = CaseFilter(district="500103")
        rows = len((await store.search(deep, skip=20 * 9, limit=20))[0])
        report("district, page 10", await timed(lambda: store.search(deep, skip=180, limit=20)), rows)
        resolved_by = resolved_by_for_due_list(datetime.now(UTC), 72, upcoming=False)

        async def due() -> Any:
            return await store.awaiting_callbacks(resolved_by=resolved_by, district=None, skip=0, limit=50)

        report("callbacks due (50 awaiting)", await timed(due), len((await due())[0]))
    finally:
        await client.drop_database(name)
        await client.close()
