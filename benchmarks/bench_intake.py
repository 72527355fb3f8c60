"""Intake benchmark: p50/p99 latency at 50 calls/s, the maximum sustained intake rate, hotline memory.

The hotline runs as a real uvicorn process against the real Kafka and store, with its own database and
its topics under a unique namespace (so no other router picks the calls up). Every measured call must
come back 201 and end up acknowledged by Kafka (the outbox is empty at the end). The hotline's resident
memory (VmRSS from /proc) must stay under 200 MB.

    python -m benchmarks intake
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient

from benchmarks.support import BenchSettings
from common.auth import issue_token
from contracts.events import (
    CASE_EVENTS_TOPIC,
    CASE_LIFECYCLE_TOPIC,
    GRANT_EVENTS_TOPIC,
    HELP_REQUESTED_TOPIC,
    SLA_EVENTS_TOPIC,
)
from services.hotline.settings import Settings
from tests.support.processes import free_port  # below the ephemeral range: see there

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATE = 50.0  # calls per second
STEADY_SECONDS = 20.0
SATURATION_SECONDS = 15.0
SATURATION_CONCURRENCY = (8, 32)
RSS_LIMIT_MB = 200.0
NEEDS = ["temp_assist_major", "dibao_application", "medical_aid", "special_group_visit", "other"]


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("VmRSS not found")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def a_call(n: int) -> dict[str, Any]:
    return {
        "caller": {"name": f"来电人{n}", "phone": f"13{random.randint(0, 999_999_999):09d}"},
        "place": {"district": random.choice(["500103", "500105", "500106", "500112"]), "address": f"民生路{n}号"},
        "needs": [random.choice(NEEDS)],
        "household_status": "low_income",
        "description": "家庭困难，需要帮助。" * 5,
    }


class Hotline:
    """The hotline as its own uvicorn process, with a unique database and topic namespace."""

    def __init__(self, settings: BenchSettings) -> None:
        run = uuid.uuid4().hex[:8]
        self.port = free_port()
        self.database = f"bench_intake_{run}"
        self.namespace = f"bench-{run}."
        self.log = Path(tempfile.gettempdir()) / f"bench-intake-{run}.log"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "HOTLINE_KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
            "HOTLINE_MONGODB_URL": settings.mongodb_url,
            "HOTLINE_MONGODB_DATABASE": self.database,
            "HOTLINE_KAFKA_GROUP_ID": f"bench-{run}",
            "HOTLINE_TOPIC_NAMESPACE": self.namespace,
            "HOTLINE_LOG_JSON": "true",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def topics(self) -> list[str]:
        return [
            self.namespace + t
            for t in (
                HELP_REQUESTED_TOPIC,
                CASE_EVENTS_TOPIC,
                CASE_LIFECYCLE_TOPIC,
                GRANT_EVENTS_TOPIC,
                SLA_EVENTS_TOPIC,
            )
        ]

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "--factory",
                    "services.hotline.app:create_app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--no-access-log",
                ],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"hotline exited early; see {self.log}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"hotline not ready after 60 s; see {self.log}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


async def post(client: httpx.AsyncClient, n: int, latencies: list[float], failures: list[str]) -> None:
    started = time.perf_counter()
    try:
        response = await client.post("/api/v1/help-requests", json=a_call(n))
    except httpx.HTTPError as exc:
        failures.append(repr(exc))
        return
    if response.status_code != 201:
        failures.append(f"{response.status_code} {response.text[:200]}")
        return
    latencies.append((time.perf_counter() - started) * 1000)


async def steady_rate(client: httpx.AsyncClient, rate: float, seconds: float) -> tuple[list[float], list[str], float]:
    """Open loop: one call every 1/rate seconds whatever the answers do (latency includes any queueing)."""
    latencies: list[float] = []
    failures: list[str] = []
    total = int(rate * seconds)
    start = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(post(client, i, latencies, failures)))
    await asyncio.gather(*tasks)
    return latencies, failures, time.perf_counter() - start


async def saturation(client: httpx.AsyncClient, concurrency: int, seconds: float) -> tuple[int, list[str], float]:
    """Closed loop: `concurrency` operators calling back to back; the completed rate is the sustained maximum."""
    latencies: list[float] = []
    failures: list[str] = []
    stop_at = time.perf_counter() + seconds
    counter = iter(range(10**9))

    async def worker() -> None:
        while time.perf_counter() < stop_at:
            await post(client, next(counter), latencies, failures)

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), failures, time.perf_counter() - start


async def main(settings: BenchSettings) -> None:
    hotline = Hotline(settings)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    await admin.create_topics([NewTopic(t, num_partitions=3, replication_factor=1) for t in hotline.topics()])
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(settings.mongodb_url)
    token = issue_token(Settings(), sub="bench-operator", role="operator", district="500103")
    succeeded = False
    try:
        await hotline.start()
        assert hotline.process is not None
        print(
            "machine load average (1/5/15 min) at start: " + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True
        )
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=hotline.url, timeout=30, limits=limits, headers={"Authorization": f"Bearer {token}"}
        ) as client:
            await steady_rate(client, 10, 2)  # warm-up: connections, indexes, producer metadata
            latencies, failures, elapsed = await steady_rate(client, TARGET_RATE, STEADY_SECONDS)
            print(
                f"intake at {TARGET_RATE:.0f} calls/s for {elapsed:.1f} s: {len(latencies)} accepted, "
                f"{len(failures)} failed",
                flush=True,
            )
            print(
                f"  latency p50 {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms, "
                f"max {max(latencies):.1f} ms, mean {statistics.fmean(latencies):.1f} ms",
                flush=True,
            )
            if failures:
                raise AssertionError(f"{len(failures)} calls failed at {TARGET_RATE}/s, e.g. {failures[0]}")
            best = 0.0
            for concurrency in SATURATION_CONCURRENCY:
                done, failures, elapsed = await saturation(client, concurrency, SATURATION_SECONDS)
                rate = done / elapsed
                best = max(best, rate)
                print(
                    f"sustained intake with {concurrency} concurrent operators: {rate:.1f} calls/s "
                    f"({done} in {elapsed:.1f} s, {len(failures)} failed)",
                    flush=True,
                )
                if failures:
                    raise AssertionError(f"{len(failures)} calls failed under saturation, e.g. {failures[0]}")
            print(f"maximum sustained intake rate: {best:.1f} calls/s", flush=True)
        memory = rss_mb(hotline.process.pid)
        cpu = cpu_seconds(hotline.process.pid)
        db = mongo[hotline.database]
        deadline = time.monotonic() + 60
        while (pending := await db["outbox"].count_documents({"published": False})) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
        total = await db["intakes"].count_documents({})
        print(
            f"calls stored: {total}; still waiting for Kafka: {pending}; hotline CPU "
            f"{cpu * 1000 / max(total, 1):.1f} ms per call ({cpu:.1f} s in all)",
            flush=True,
        )
        print(f"hotline RSS after the run: {memory:.1f} MB (limit {RSS_LIMIT_MB:.0f} MB)", flush=True)
        print("machine load average at the end: " + " ".join(f"{v:.2f}" for v in os.getloadavg()), flush=True)
        if pending:
            raise AssertionError(f"{pending} calls were not acknowledged by Kafka within 60 s")
        if memory >= RSS_LIMIT_MB:
            raise AssertionError(f"hotline RSS {memory:.1f} MB is over {RSS_LIMIT_MB:.0f} MB")
        succeeded = True
    finally:
        hotline.stop()
        await mongo.drop_database(hotline.database)
        await mongo.close()
        try:
            await admin.delete_topics(hotline.topics())
        finally:
            await admin.close()
        if succeeded:
            hotline.log.unlink(missing_ok=True)
        else:
            print(f"hotline log kept: {hotline.log}", flush=True)
