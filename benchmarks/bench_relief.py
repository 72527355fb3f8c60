"""Relief: a P1.3 price-subsidy run over 100,000 registry recipients against the real store, then the
same run again, which must pay nobody twice (the ledger count is printed after each run).

    python -m benchmarks relief          (RELIEF_BENCH_RECIPIENTS overrides the 100,000)
"""

from __future__ import annotations

import os
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from pymongo import AsyncMongoClient

from benchmarks.support import BenchSettings
from services.relief.domain.facts import Category
from services.relief.domain.runs import RunKind, RunSpec, run_id_for
from services.relief.store import ReliefStore
from services.relief.subsidies import execute_run, run_document

DISTRICTS = ("500103", "500106")
CATEGORIES = (["dibao"], ["tekun"], ["youfu"], ["unemployment_benefit"], ["edge"], ["dibao", "youfu"])


def registry(n: int) -> list[dict]:
    """n recipients over two districts; one in six is an edge household, which P1.3 does not pay."""
    return [
        {
            "_id": f"R{i:08d}",
            "name": f"recipient {i}",
            "id_card_hash": uuid.uuid4().hex,
            "id_card_masked": "-",
            "district": DISTRICTS[i % 2],
            "area": "urban",
            "categories": CATEGORIES[i % len(CATEGORIES)],
            "approved_on": "2020-01-01",
            "ended_on": None,
        }
        for i in range(n)
    ]


async def main(settings: BenchSettings) -> None:
    n = int(os.environ.get("RELIEF_BENCH_RECIPIENTS", "100000"))
    client: AsyncMongoClient = AsyncMongoClient(settings.mongodb_url, tz_aware=True, serverSelectionTimeoutMS=5000)
    name = f"bench_relief_{uuid.uuid4().hex[:8]}"
    try:
        store = ReliefStore(client[name])
        await store.ensure_indexes()
        started = time.perf_counter()
        docs = registry(n)  # set-up, not measured as the run: plain bulk inserts
        for i in range(0, n, 5000):
            await store.registry.insert_many(docs[i : i + 5000], ordered=False)
        print(f"registry: {n} recipients loaded in {time.perf_counter() - started:.1f} s", flush=True)
        eligible = n - n // len(CATEGORIES) - (1 if n % len(CATEGORIES) > 4 else 0)
        spec = RunSpec(
            run_id_for(RunKind.PRICE_LINKAGE, "2021-02", "bench", "city"),
            RunKind.PRICE_LINKAGE,
            "2021-02",
            frozenset(DISTRICTS),
            {
                Category.DIBAO: Decimal("100.00"),
                Category.TEKUN: Decimal("120.00"),
                Category.YOUFU: Decimal("150.00"),
                Category.UNEMPLOYMENT_BENEFIT: Decimal("80.00"),
            },
        )
        await store.create_run(run_document(spec, "bench", "city", "bench", datetime.now(UTC)))
        for attempt in (1, 2):
            result = await execute_run(store, spec.run_id, by="bench", batch_size=2000)
            rate = result.scanned / result.seconds if result.seconds else float("inf")
            print(
                f"run {attempt}: scanned {result.scanned} recipients, inserted {result.inserted} payments in "
                f"{result.seconds:.1f} s ({rate:,.0f} recipients/s); ledger count {result.ledger_count} "
                f"(eligible {eligible}); total {Decimal(result.paid_fen) / 100:,.2f} yuan",
                flush=True,
            )
            if result.ledger_count != eligible:
                raise AssertionError(f"ledger count {result.ledger_count} != eligible {eligible}")
        print("second run paid nobody twice: ledger count unchanged", flush=True)
    finally:
        await client.drop_database(name)
        await client.close()
