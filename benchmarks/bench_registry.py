"""Relief's registry search (P2.3) on the real store, with N registry records written through relief's own
store code (`ReliefStore.upsert_registry`, as a registry import writes them).

Prints p50/p95 latency of an officer's searches (`ReliefStore.search_registry`): part of a name, a surname,
the last four of an ID card, the district of issue, a masked number, a whole ID card (its hash), a
recipient id, the district's first page and a later one; beside each, the same search as it was before
the registry had terms (a regex on the name or the masked number, a sort, a skip and a count: on FerretDB
each decodes the whole registry) and the ratio; then the start-up backfill over records without terms.

    python -m benchmarks registry                      # N = 20,000
    BENCH_REGISTRY_COUNT=5000 python -m benchmarks registry
"""

from __future__ import annotations

import os
import random
import re
import time
import uuid
from datetime import date
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient

from benchmarks.bench_search import report, timed
from benchmarks.support import BenchSettings
from services.relief.domain.personal import RegistrySearch, SearchKind, registry_search
from services.relief.domain.registry import hash_id_card, mask_id_card
from services.relief.records import RegistryRecord
from services.relief.store import ReliefStore

SALT = "bench-salt"
SCAN_SAMPLES = int(os.environ.get("BENCH_REGISTRY_SCAN_SAMPLES", "3"))
DISTRICTS = ("500101", "500102", "500103", "500104", "500105", "500106", "500107", "500108")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂"
CATEGORIES = ("dibao", "tekun", "low_income", "orphan")


def id_card(n: int) -> str:
    body = f"{DISTRICTS[n % len(DISTRICTS)]}19{60 + n % 40:02d}0101{n % 1000:03d}"
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(c) * w for c, w in zip(body, weights, strict=True)) % 11]


def record(n: int) -> RegistryRecord:
    rng = random.Random(n)
    card = id_card(n)
    return RegistryRecord.model_validate(
        {
            "_id": f"R{n:07d}",
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN) + rng.choice(GIVEN),
            "id_card_hash": hash_id_card(card, SALT),
            "id_card_masked": mask_id_card(card),
            "district": DISTRICTS[n % len(DISTRICTS)],
            "area": "urban",
            "categories": [CATEGORIES[n % len(CATEGORIES)]],
            "approved_on": date(2020, 1, 1),
        }
    )


def old_query(search: RegistrySearch | None, district: str | None) -> dict[str, Any]:
    """The registry query before the records had terms."""
    query: dict[str, Any] = {"district": district} if district else {}
    if search is None:
        return query
    value = search.value
    match search.kind:
        case SearchKind.ID_CARD:
            return query | {"id_card_hash": value}
        case SearchKind.MASKED:
            return query | {"id_card_masked": value}
        case SearchKind.DIGITS:
            v = re.escape(value)
            return query | {"$or": [{"id_card_masked": {"$regex": f"^{v}"}}, {"id_card_masked": {"$regex": f"{v}$"}}]}
        case _:
            return query | {"$or": [{"name": {"$regex": re.escape(value)}}, {"_id": value}]}


async def old_search(
    store: ReliefStore, search: RegistrySearch | None, district: str | None, page: int
) -> tuple[list[str], int]:
    query = old_query(search, district)
    cursor = store.registry.find(query, {"id_card_hash": 0}).sort("_id", ASCENDING).skip((page - 1) * 20).limit(20)
    return [d["_id"] for d in await cursor.to_list(20)], await store.registry.count_documents(query)


async def main(settings: BenchSettings) -> None:
    count = int(os.environ.get("BENCH_REGISTRY_COUNT", "20000"))
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url, tz_aware=True)
    name = f"bench_registry_{uuid.uuid4().hex[:8]}"
    try:
        store = ReliefStore(client[name])
        await store.ensure_indexes()
        started = time.perf_counter()
        await store.upsert_registry([record(n) for n in range(count)])
        print(f"  loaded {count} registry records in {time.perf_counter() - started:.1f} s", flush=True)
        probe = record(count // 2 + (2 - count // 2) % len(DISTRICTS))  # one of 500103's
        masked = probe.id_card_masked or ""
        searches: dict[str, tuple[str, str | None, int]] = {
            "part of a name (two characters)": ((probe.name or "")[1:], "500103", 1),
            "a surname": ((probe.name or "")[0], "500103", 1),
            "last four of an ID card": (masked[-4:], "500103", 1),
            "district of issue (six digits)": (masked[:6], None, 1),
            "a masked number": (masked, None, 1),
            "a whole ID card (its hash)": (id_card(int(probe.id[1:])), None, 1),
            "a recipient id": (probe.id, None, 1),
            "the district, first page": ("", "500103", 1),
            "the district, page 10": ("", "500103", 10),
        }
        print(
            f"  {count} records; page size 20; 10 runs each"
            + (f", {SCAN_SAMPLES} of the old query beside (the same page and total checked):" if SCAN_SAMPLES else ":"),
            flush=True,
        )
        for label, (q, district, page) in searches.items():
            search = registry_search(q, SALT) if q else None

            async def new(search: RegistrySearch | None = search, district: str | None = district, page: int = page):
                return await store.search_registry(search, district=district, category=None, page=page, page_size=20)

            records, total = await new()
            before = None
            if SCAN_SAMPLES:
                ids, old_total = await old_search(store, search, district, page)
                if (ids, old_total) != ([r.id for r in records], total):
                    raise AssertionError(f"{label}: {total} found now, {old_total} before")
                before = await timed(lambda s=search, d=district, p=page: old_search(store, s, d, p), SCAN_SAMPLES)
            report(f"{label} ({total})", await timed(new), len(records), before)
        await store.registry.update_many({"district": "500101"}, {"$unset": {"terms": ""}})  # an eighth
        started = time.perf_counter()
        filed = await store.file_registry_terms()
        print(
            f"  start-up backfill of {filed} records without terms: {time.perf_counter() - started:.1f} s", flush=True
        )
    finally:
        await client.drop_database(name)
        await client.close()
