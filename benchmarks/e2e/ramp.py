"""Stepping the rate up until a stage falls behind, and the raw store-then-commit relay beside it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient

from benchmarks.bench_router import Clock, create_topics, last_output, produce, request_bytes, run_relay
from benchmarks.e2e.report import table
from benchmarks.e2e.surge import STAGES, Tracker

Send = Callable[..., Awaitable[Any]]


def tolerance(stage: str, rate: float, sample_every: int) -> float:
    """Backlog growth still counted as keeping up: two seconds of calls (what is normally in flight)."""
    allowed = 2 * rate if stage in ("accept", "dispatch") else 2 * rate / sample_every
    return max(allowed, 5 if stage in ("accept", "dispatch") else 2)


async def ramp(tracker: Tracker, send: Send, rates: tuple[float, ...], step_s: float, sample_every: int) -> None:
    """Each step: the backlog in front of every stage at its start and at the moment its last call left
    (accept: calls without a successful reply yet, failures included); stops at the first step where one
    grew beyond the tolerance."""
    rows, best, limit = [], None, None
    for rate in rates:
        before = tracker.backlog(time.time())
        await send(f"ramp {rate:g}/s", rate, step_s, wait=False)
        after = tracker.backlog(time.time())
        behind = [s for s in STAGES if after[s] - before[s] > tolerance(s, rate, sample_every)]
        rows.append([f"{rate:g}", *(f"{before[s]}→{after[s]}" for s in STAGES), ", ".join(behind) or "keeps up"])
        if behind:
            limit = (rate, behind[0])
            break
        best = rate
    await asyncio.gather(*tracker.in_flight)
    print(
        f"\nramp: {step_s:g} s per step; backlog = cases waiting in front of the stage at the step's start→end "
        f"(hotline and notify: sampled cases, 1 in {sample_every})"
    )
    print(table(["calls/s", *STAGES, "verdict"], rows))
    kept = f"{best:g} calls/s" if best is not None else f"none of the steps (below {rates[0]:g} calls/s)"
    print(
        f"highest rate every stage kept up with: {kept}"
        + (f"; at {limit[0]:g} calls/s the first stage behind was: {limit[1]}" if limit else ""),
        flush=True,
    )


async def relay_rate(bootstrap: str, mongodb_url: str, namespace: str, records: int) -> None:
    """A raw aiokafka relay that stores each batch (insert_many) before it sends it on and commits: the
    limit of any stage that stores before it commits, on the same broker and store."""
    run = uuid.uuid4().hex[:8]
    source, sink = f"{namespace}relay-in", f"{namespace}relay-out"
    await create_topics(bootstrap, [source, sink], 3)
    await produce(bootstrap, source, [request_bytes(i, f"{int(run, 16) % 10**8:08d}") for i in range(records)])
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongodb_url)
    collection = client[f"bench_e2e_relay_{run}"]["records"]

    async def store(batch: list[ConsumerRecord]) -> None:
        await collection.insert_many(
            [
                {
                    "_id": f"{r.partition}:{r.offset}",
                    "key": r.key.decode() if r.key else None,
                    "value": (r.value or b"").decode(),
                }
                for r in batch
            ],
            ordered=False,
        )

    stop, clock = asyncio.Event(), Clock()
    relay = asyncio.create_task(run_relay(bootstrap, source, sink, stop, clock, store=store))
    relayed, end = await last_output(bootstrap, sink, records, timeout_s=300)
    stop.set()
    await relay
    stored = await collection.count_documents({})
    await client.drop_database(f"bench_e2e_relay_{run}")
    await client.close()
    seconds = end - (clock.started or end)
    print(
        f"\nraw relay (getmany → insert_many → send → commit): {relayed} records in {seconds:.2f} s = "
        f"{relayed / seconds if seconds else float('inf'):.0f} records/s ({stored} stored)",
        flush=True,
    )
