"""End-to-end surge: the whole path a caller waits on, with the four services as their own processes on
a store that already holds a history of earlier cases.

    make bench BENCH=e2e      (BENCH_E2E_HISTORY, _SECONDS, _RATE, _ONE_PHONE_SHARE, _RAMP_RATES,
                               _RAMP_STEP_S, _REBUILD, ...: see benchmarks/e2e/settings.py)

Phases: a plain surge (operator calls at `rate`, each from a caller of its own), the same with a share of
the calls from one phone, a ramp of rising rates, and a raw store-then-commit relay on the same broker and
store. The history is built once per size and kept (`benchmarks/e2e/history.py`); topics and consumer
groups are this run's own. Not part of a plain `make bench`: it runs only when named.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Any

import httpx
from pymongo import AsyncMongoClient

from benchmarks.bench_router import create_topics, delete_topics
from benchmarks.e2e import report, surge
from benchmarks.e2e.history import ensure_history
from benchmarks.e2e.ramp import ramp, relay_rate
from benchmarks.e2e.settings import SERVICES, E2eBench
from benchmarks.e2e.stack import Stack, cpu_of, rss_mb
from benchmarks.support import BenchSettings
from common.auth import issue_token
from common.logs import configure_logging
from common.store import serves_queries_from_indexes
from contracts.events import CASE_LIFECYCLE_TOPIC, HELP_REQUESTED_TOPIC, all_topics, dlq_topic
from services.hotline.settings import Settings as HotlineSettings


def client_for(url: str, role: str) -> httpx.AsyncClient:
    token = issue_token(
        HotlineSettings(), sub=f"bench-{role}", role=role, district="city" if role != "operator" else "500103"
    )
    limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
    return httpx.AsyncClient(base_url=url, timeout=60, limits=limits, headers={"Authorization": f"Bearer {token}"})


async def vacuum_local_store(mongo: AsyncMongoClient[dict[str, Any]], opts: E2eBench) -> str:
    """On the local store (FerretDB on PostgreSQL), `VACUUM (ANALYZE)` before the surge, as after any bulk
    load. Left to autovacuum, the vacuums of a history loaded moments before (its 100,000-row tables and
    their GIN indexes' pending entries) ran during the surge: in a full run they began 90 s into the plain
    phase, and from then on every stage fell behind. Quick when there is nothing to do (a history reused)."""
    if await serves_queries_from_indexes(mongo[opts.history_database(SERVICES[0])]):
        return "not the local FerretDB store (MongoDB: nothing to do)"
    started = time.monotonic()
    infra = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "deploy", "local", "infra.sh")
    vacuum = await asyncio.create_subprocess_exec("bash", infra, "psql", "-c", "VACUUM (ANALYZE)")
    if await vacuum.wait() != 0:
        raise RuntimeError(f"VACUUM (ANALYZE) of the local store failed (exit {vacuum.returncode})")
    return f"VACUUM (ANALYZE) of the local PostgreSQL store took {time.monotonic() - started:.0f} s"


async def history_counts(client: AsyncMongoClient[dict[str, Any]], opts: E2eBench) -> str:
    where = {"hotline": "intakes", "router": "cases_archive", "relief": "cases", "notify": "cases"}
    counts = [
        f"{s} {await client[opts.history_database(s)][c].estimated_document_count()} {c}" for s, c in where.items()
    ]
    return ", ".join(counts)


async def main(bench: BenchSettings) -> None:
    opts = E2eBench()
    configure_logging("e2e-bench", "ERROR", json=True)
    run = uuid.uuid4().hex[:8]
    namespace = f"bench-e2e-{run}."
    bootstrap = bench.kafka_bootstrap_servers
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        bench.mongodb_url, tz_aware=True, uuidRepresentation="standard"
    )
    print(
        f"e2e surge: history {opts.history}, {opts.seconds:g} s at {opts.rate:g} calls/s, one-phone share "
        f"{opts.one_phone_share:g}, ramp {list(opts.ramp_rates)} × {opts.ramp_step_s:g} s; load average "
        + " ".join(f"{v:.2f}" for v in os.getloadavg()),
        flush=True,
    )
    print(f"history: {await ensure_history(mongo, opts)}", flush=True)
    print(f"store holds: {await history_counts(mongo, opts)}", flush=True)
    print(f"store maintenance: {await vacuum_local_store(mongo, opts)}", flush=True)
    # Every topic up front: a subscriber of a topic nobody has written to yet waits for it to appear.
    await create_topics(bootstrap, [namespace + t for topic in all_topics() for t in (topic, dlq_topic(topic))], 3)
    stack = Stack(bootstrap, bench.mongodb_url, namespace, run, opts)
    tracker, stop = surge.Tracker(), asyncio.Event()
    succeeded = False
    try:
        stack.start()
        ready_at = time.monotonic()
        pids = stack.pids(bench.infra_instance)
        async with (
            client_for(stack.url("hotline"), "operator") as hotline,
            client_for(stack.url("notify"), "coordinator") as notify,
            httpx.AsyncClient(timeout=60) as plain,  # /metrics of a service busy loading its history
        ):
            watchers = [
                asyncio.create_task(
                    surge.watch_dispatches(
                        bootstrap, namespace + CASE_LIFECYCLE_TOPIC, namespace + HELP_REQUESTED_TOPIC, tracker, stop
                    )
                ),
                *(
                    asyncio.create_task(
                        surge.poll(
                            c,
                            tracker,
                            stage,
                            stop,
                            interval_s=opts.poll_interval_s,
                            per_round=opts.polls_per_round,
                            relative_gap=opts.poll_relative_gap,
                        )
                    )
                    for c, stage in ((hotline, "hotline"), (notify, "notify"))
                ),
            ]
            run_no = int(run, 16) % 10**6 * 1000

            async def send(
                phase: str, rate: float, seconds: float, share: float = 0.0, wait: bool = True
            ) -> list[surge.Call]:
                return await surge.send_calls(
                    hotline,
                    tracker,
                    phase=phase,
                    rate=rate,
                    seconds=seconds,
                    shared_share=share,
                    sample_every=opts.sample_every,
                    run=run_no,
                    wait=wait,
                    consent_share=opts.consent_share,
                )

            await send("warm-up", 5, 4)  # connections, producer metadata, consumer groups
            await surge.drain(tracker, tracker.calls, 60)
            # What the services load at start-up (the hotline's repeat-caller memory: one read of every
            # caller slot of the history) competes with the surge for the store: in a run that started
            # without waiting, the calls of the first 30 s reached the hotline's view at p99 24 s.
            parts = await stack.warmed(plain, opts.warm_up_s)
            missing = [part for part, ok in parts.items() if not ok]
            loaded = ", ".join(part for part, ok in parts.items() if ok) or "nothing to load"
            print(
                f"\nwarm-up: {loaded} loaded {time.monotonic() - ready_at:.0f} s after the services were ready"
                + (f"; NOT loaded after {opts.warm_up_s:g} s: {', '.join(missing)}" if missing else ""),
                flush=True,
            )
            if opts.warm_up_calls_s > 0:
                # The first half-minute at the surge rate from a standstill was several times slower than
                # the rest (a 2,000-case history: the hotline's view p99 5.6 s against 1.2 s after it):
                # Kafka's JIT, batch sizes and pools adapting. A system a surge hits has been running.
                calls = await send("warm-up", opts.rate, opts.warm_up_calls_s)
                await surge.drain(tracker, calls, opts.drain_s)
                report.print_phase(
                    tracker, calls, f"warm-up at the surge rate, {opts.warm_up_calls_s:g} s (not counted)"
                )
                print(await surge.settle(tracker, opts.settle_s), flush=True)
            print(
                f"\npolling: 1 in {opts.sample_every} cases, at most {opts.polls_per_round} polls per service "
                f"every {opts.poll_interval_s * 1000:.0f} ms, once dispatched, each case again after "
                f"{opts.poll_relative_gap:.0%} of its age, the earliest due first (* = sampled stages); "
                "latencies from each call's scheduled send time; dispatch = the record's Kafka timestamp",
                flush=True,
            )
            commands, cpu = await stack.store_commands(plain), cpu_of(pids)
            calls = await send("plain", opts.rate, opts.seconds)
            waited = await surge.drain(tracker, calls, opts.drain_s)
            after_commands, after_cpu = await stack.store_commands(plain), cpu_of(pids)
            report.print_phase(
                tracker,
                calls,
                f"plain surge, {opts.rate:g} calls/s for {opts.seconds:g} s (then {waited:.0f} s to drain)",
            )
            accepted = sum(c.case_id is not None for c in calls) or 1
            report.print_resources(
                accepted,
                {k: after_cpu[k] - cpu[k] for k in after_cpu},
                {s: {k: v - commands[s].get(k, 0) for k, v in after_commands[s].items()} for s in SERVICES},
            )
            if opts.one_phone_share > 0:
                print(await surge.settle(tracker, opts.settle_s), flush=True)
                calls = await send("one phone", opts.rate, opts.seconds, opts.one_phone_share)
                waited = await surge.drain(tracker, calls, opts.drain_s)
                report.print_phase(
                    tracker,
                    calls,
                    f"one-phone surge, {opts.one_phone_share:.0%} of the calls from "
                    f"one phone (then {waited:.0f} s to drain)",
                )
            if opts.ramp_rates:
                print(await surge.settle(tracker, opts.settle_s), flush=True)
                await ramp(tracker, send, opts.ramp_rates, opts.ramp_step_s, opts.sample_every)
            stop.set()
            await asyncio.gather(*watchers)
            rss = {name: rss_mb(pid) for name, pid in stack.pids(bench.infra_instance).items()}
            print("\nRSS at the end: " + ", ".join(f"{k} {v:.0f} MB" for k, v in rss.items()), flush=True)
        stack.stop()
        if opts.relay_records:
            await relay_rate(bootstrap, bench.mongodb_url, namespace, opts.relay_records)
        print(f"store holds after the run: {await history_counts(mongo, opts)}")
        print("machine load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
        succeeded = True
    finally:
        stop.set()
        stack.stop()
        await delete_topics(bootstrap, namespace)
        await mongo.close()
        if not succeeded or opts.keep_logs:
            print(f"service logs kept in {stack.logs}", flush=True)
        else:
            for log in stack.logs.iterdir():
                log.unlink()
            stack.logs.rmdir()
