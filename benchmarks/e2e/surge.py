"""Calls in, open loop, and the watchers that see each case reach every stage.

- accept: the hotline's HTTP reply to `POST /api/v1/help-requests`;
- dispatch: the `case.dispatched` record on the lifecycle topic (its timestamp: when the router sent it),
  and the router's own part, from the help request's record (its timestamp: when the hotline sent it);
  read by a consumer of its own;
- hotline shows it: the hotline's `GET /cases/{id}/status` says dispatched;
- notify has its clocks: notify's `GET /cases/{id}` lists a department clock.
The last two are polled for a sample of the cases only (1 in `sample_every`), at most `polls_per_round`
per service every `poll_interval_s`, once dispatched, each case again after a fraction of its age, the
earliest due first, so the polling stays a small load of its own and goes round fairly.
Every latency runs from the call's scheduled send time, so a sender falling behind counts against it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer

STAGES = ("accept", "dispatch", "hotline", "notify")
SHARED_PHONE = "13600000000"
NEEDS = ["temp_assist_major", "dibao_application", "medical_aid", "special_group_visit", "other"]
DISTRICTS = ["500103", "500105", "500106", "500112"]


@dataclass
class Call:
    n: int
    phase: str
    scheduled: float  # wall clock, comparable with Kafka record timestamps
    shared_phone: bool
    sampled: bool
    case_id: str | None = None
    replied: float | None = None
    failed: str | None = None
    shown: float | None = None
    clocks: float | None = None
    # Per polled stage: when the case was last polled, and the gap between its last two polls once the
    # stage is reached (the figure is within that of the moment the stage was reached).
    polled: dict[str, float] = field(default_factory=dict)
    gap: dict[str, float] = field(default_factory=dict)


@dataclass
class Tracker:
    calls: list[Call] = field(default_factory=list)
    dispatched: dict[str, float] = field(default_factory=dict)  # case id -> record timestamp (s)
    requested: dict[str, float] = field(default_factory=dict)  # case id -> the help request's record timestamp
    sampled: list[Call] = field(default_factory=list)
    in_flight: list[asyncio.Task[None]] = field(default_factory=list)  # calls a ramp step did not wait for

    def at(self, call: Call, stage: str) -> float | None:
        """When the call reached `stage` (wall clock), if it did."""
        if stage == "accept":
            return call.replied if call.failed is None else None
        if stage == "dispatch":
            return self.dispatched.get(call.case_id or "")
        return call.shown if stage == "hotline" else call.clocks

    def routing(self, call: Call) -> float | None:
        """The router's own time for the case: from the help request's record to the dispatch's (s)."""
        requested, dispatched = self.requested.get(call.case_id or ""), self.dispatched.get(call.case_id or "")
        return dispatched - requested if requested is not None and dispatched is not None else None

    def backlog(self, now: float) -> dict[str, int]:
        """Cases waiting in front of each stage right now (the polled stages: sampled cases only)."""
        sent = [c for c in self.calls if c.scheduled <= now]
        ok = [c for c in sent if c.case_id is not None]
        sampled = [c for c in ok if c.sampled]
        return {
            "accept": sum(c.replied is None or c.failed is not None for c in sent),
            "dispatch": sum(c.case_id not in self.dispatched for c in ok),
            "hotline": sum(c.shown is None for c in sampled),
            "notify": sum(c.clocks is None for c in sampled),
        }


def a_call(n: int, run: int, shared: bool, consents: bool = False) -> dict[str, Any]:
    """A call from a caller of its own (phone and household), or from the one shared phone; `consents`:
    the caller agrees to texts about the case (notify then texts them, P6.2)."""
    phone = SHARED_PHONE if shared else f"139{(run + n) % 10**8:08d}"
    return {
        "caller": {"name": f"来电人{n}", "phone": phone, "consents_to_texts": consents},
        "place": {"district": DISTRICTS[n % len(DISTRICTS)], "address": f"民生路{run}-{n}号"},
        "needs": [NEEDS[n % len(NEEDS)]],
        "household_status": "low_income",
        "description": "家庭困难，需要帮助。" * 5,
    }


async def post(client: httpx.AsyncClient, tracker: Tracker, call: Call, body: dict[str, Any]) -> None:
    try:
        response = await client.post("/api/v1/help-requests", json=body)
    except httpx.HTTPError as exc:
        call.failed, call.replied = repr(exc), time.time()
        return
    call.replied = time.time()
    if response.status_code != 201:
        call.failed = f"{response.status_code} {response.text[:200]}"
        return
    call.case_id = response.json()["case_id"]
    if call.sampled:
        tracker.sampled.append(call)


async def send_calls(
    client: httpx.AsyncClient,
    tracker: Tracker,
    *,
    phase: str,
    rate: float,
    seconds: float,
    shared_share: float,
    sample_every: int,
    run: int,
    wait: bool = True,
    consent_share: float = 0.0,
) -> list[Call]:
    """Open loop: call i leaves at start + i/rate whatever the earlier ones are doing. Without `wait`,
    returns when the last call has left, its replies still to come (a ramp step ends on time)."""
    calls, tasks = [], []
    first = len(tracker.calls)
    sampling = {False: 0, True: 0}  # the one phone's calls are sampled as often as other callers
    start_wall, start = time.time(), time.perf_counter()
    for i in range(int(rate * seconds)):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        n = first + i
        shared = shared_share > 0 and int((i + 1) * shared_share) > int(i * shared_share)
        sampled = ((0 if shared else first) + sampling[shared]) % sample_every == 0
        sampling[shared] += 1
        call = Call(n=n, phase=phase, scheduled=start_wall + i / rate, shared_phone=shared, sampled=sampled)
        tracker.calls.append(call)
        calls.append(call)
        consents = int((n + 1) * consent_share) > int(n * consent_share)
        tasks.append(asyncio.create_task(post(client, tracker, call, a_call(n, run, shared, consents))))
    if wait:
        await asyncio.gather(*tasks)
    else:
        tracker.in_flight.extend(tasks)
    return calls


async def watch_dispatches(
    bootstrap: str, topic: str, requests_topic: str, tracker: Tracker, stop: asyncio.Event
) -> None:
    """Note each `case.dispatched` record's timestamp on the lifecycle `topic` and, on `requests_topic`,
    each help request's (the router's receipt)."""
    consumer = AIOKafkaConsumer(
        topic,
        requests_topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        while not stop.is_set():
            for partition, records in (await consumer.getmany(timeout_ms=200, max_records=2000)).items():
                for record in records:
                    if not record.key:
                        continue
                    if partition.topic == requests_topic:
                        tracker.requested.setdefault(record.key.decode(), record.timestamp / 1000)
                    elif b'"type":"case.dispatched"' in (record.value or b""):
                        tracker.dispatched.setdefault(record.key.decode(), record.timestamp / 1000)
    finally:
        await consumer.stop()


async def _hotline_shows(client: httpx.AsyncClient, call: Call) -> bool:
    response = await client.get(f"/api/v1/cases/{call.case_id}/status")
    return response.status_code == 200 and response.json().get("status") != "received"


async def _notify_has_clocks(client: httpx.AsyncClient, call: Call) -> bool:
    response = await client.get(f"/api/v1/cases/{call.case_id}")
    return response.status_code == 200 and any(c.get("kind") == "department" for c in response.json().get("clocks", []))


def next_poll_at(call: Call, stage: str, dispatched_at: float, relative_gap: float, min_gap_s: float) -> float:
    """When a case waiting for `stage` is next due a poll: at its dispatch first, then each poll a fraction
    `relative_gap` of the case's age after the one before (at least `min_gap_s`). A figure is then within
    that fraction of itself, and a case slow to arrive costs ever fewer polls."""
    last = call.polled.get(stage)
    if last is None:
        return dispatched_at
    return last + max(min_gap_s, relative_gap * (last - dispatched_at))


async def poll(
    client: httpx.AsyncClient,
    tracker: Tracker,
    stage: str,
    stop: asyncio.Event,
    *,
    interval_s: float,
    per_round: int,
    relative_gap: float = 0.25,
) -> None:
    """Poll the sampled cases that have not reached `stage`, at most `per_round` of them a round: those the
    router has dispatched (neither stage can come before it) and due by `next_poll_at`, the earliest due
    first. A fixed budget of polls then goes round fairly: a case slow to arrive neither holds up the
    measurement of the cases behind it (as polling strictly oldest first did) nor has them wait for their
    turn behind every case still waiting (as polling longest ago first did); when the budget is short, every
    case's gaps stretch alike, and each phase prints the gaps."""
    check, done = (_hotline_shows, "shown") if stage == "hotline" else (_notify_has_clocks, "clocks")

    async def one(call: Call) -> None:
        before = call.polled.get(stage)
        call.polled[stage] = sent = time.time()
        try:
            reached = await check(client, call)
        except httpx.HTTPError:
            return  # tried again in a later round
        if reached and getattr(call, done) is None:
            setattr(call, done, time.time())  # the answer came back: the stage was reached by then
            call.gap[stage] = sent - (before if before is not None else tracker.dispatched[call.case_id or ""])

    while not stop.is_set():
        now = time.time()
        due: list[tuple[float, Call]] = []
        for call in tracker.sampled:
            dispatched_at = tracker.dispatched.get(call.case_id or "")
            if getattr(call, done) is None and dispatched_at is not None:
                at = next_poll_at(call, stage, dispatched_at, relative_gap, interval_s)
                if at <= now:
                    due.append((at, call))
        due.sort(key=lambda d: d[0])
        await asyncio.gather(*(one(c) for _, c in due[:per_round]))
        await asyncio.sleep(interval_s)


async def settle(tracker: Tracker, timeout_s: float) -> str:
    """Before a phase: wait until every earlier call reached every stage (`timeout_s` at most), so the
    phase's figures are not those of the backlog the phase before left; says how it went."""
    waited = await drain(tracker, tracker.calls, timeout_s)
    behind = {stage: n for stage, n in tracker.backlog(time.time()).items() if n and stage != "accept"}
    if not behind:
        return f"settled: every earlier call reached every stage after {waited:.0f} s"
    left = ", ".join(f"{stage} {n}" for stage, n in behind.items())
    return (
        f"not settled after {waited:.0f} s ({left} still behind; hotline and notify: sampled cases): the phase "
        "starts with that backlog"
    )


async def drain(tracker: Tracker, calls: list[Call], timeout_s: float) -> float:
    """Wait until every call of `calls` reached every stage, or `timeout_s`; returns the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout_s:
        if all(c.failed is not None or all(tracker.at(c, s) is not None for s in STAGES[:2]) for c in calls) and all(
            c.shown is not None and c.clocks is not None for c in calls if c.sampled and c.case_id
        ):
            break
        await asyncio.sleep(0.5)
    return time.monotonic() - started
