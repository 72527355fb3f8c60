"""The e2e benchmark's load and its measurement: the one phone's calls are sampled too, the polling of the
sampled cases does not let one case slow to arrive hold up the figures of the others, and the router's own
part of the dispatch is measured from its receipt."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from benchmarks.e2e.report import stage_rows, timeline_rows
from benchmarks.e2e.surge import Call, Tracker, poll, send_calls

pytestmark = pytest.mark.unit


def answering(statuses: dict[str, str], polls: dict[str, int] | None = None) -> httpx.AsyncClient:
    """A hotline that takes every call and answers each case's status from `statuses` ("received" if
    unknown), counting the polls of each case in `polls`."""
    taken: list[str] = []
    polls = polls if polls is not None else {}

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            taken.append(f"CQ-20261205-{len(taken) + 1:06d}")
            return httpx.Response(201, json={"case_id": taken[-1]})
        case_id = request.url.path.split("/")[4]
        polls[case_id] = polls.get(case_id, 0) + 1
        return httpx.Response(200, json={"status": statuses.get(case_id, "received")})

    return httpx.AsyncClient(transport=httpx.MockTransport(handle), base_url="http://hotline")


async def test_the_one_phone_s_calls_are_sampled_as_often_as_other_callers() -> None:
    tracker = Tracker()
    async with answering({}) as client:
        calls = await send_calls(
            client, tracker, phase="one phone", rate=2000, seconds=0.1, shared_share=0.1, sample_every=5, run=1
        )
    shared = [c for c in calls if c.shared_phone]
    assert len(calls) == 200 and len(shared) == 20
    assert sum(c.sampled for c in shared) == 4  # 1 in 5 of its 20 calls
    assert sum(c.sampled for c in calls if not c.shared_phone) == 36  # 1 in 5 of the other 180
    assert sorted(tracker.sampled, key=lambda c: c.n) == [c for c in calls if c.sampled]
    assert all(c.case_id for c in tracker.sampled)


async def test_two_cases_that_never_arrive_do_not_hold_up_the_polling_of_the_others() -> None:
    """Two polls a round: the two oldest cases never reach the stage, the three after them do at once, and
    a sixth is not dispatched yet. Polled strictly oldest first, the three would never be looked at; here
    each case is polled again only after a quarter of its age, so the two, dispatched 5 s ago, take one poll
    each and then wait 1.25 s, and the three are shown. The one not dispatched is not polled at all."""
    now = time.time()
    cases = [Call(n=n, phase="p", scheduled=now - 10 + n, shared_phone=False, sampled=True) for n in range(6)]
    for n, call in enumerate(cases):
        call.case_id = f"CQ-20261205-{n + 1:06d}"
    tracker = Tracker(sampled=cases, dispatched={c.case_id or "": now - 5 for c in cases[:5]})
    stop = asyncio.Event()
    shown = {c.case_id: "dispatched" for c in cases[2:] if c.case_id}
    polls: dict[str, int] = {}
    async with answering(shown, polls) as client:
        polling = asyncio.create_task(poll(client, tracker, "hotline", stop, interval_s=0.01, per_round=2))
        await asyncio.sleep(0.4)
        stop.set()
        await polling
    assert [c.shown is not None for c in cases] == [False, False, True, True, True, False]
    assert all(5 <= c.gap["hotline"] <= 5.5 for c in cases[2:5])  # first polled: the gap runs from the dispatch
    assert [polls.get(c.case_id or "") for c in cases] == [1, 1, 1, 1, 1, None]


async def test_a_case_slow_to_arrive_is_polled_ever_less_often() -> None:
    """Dispatched just now and never shown: polled every round (10 ms) at first, then after a quarter of its
    age each time, so over 0.4 s far fewer than the 40 polls of every round (the figure of a case reached
    at last is within a quarter of itself)."""
    now = time.time()
    case = Call(n=0, phase="p", scheduled=now, shared_phone=False, sampled=True, case_id="CQ-20261205-000001")
    tracker = Tracker(sampled=[case], dispatched={"CQ-20261205-000001": now})
    stop = asyncio.Event()
    polls: dict[str, int] = {}
    async with answering({}, polls) as client:
        polling = asyncio.create_task(poll(client, tracker, "hotline", stop, interval_s=0.01, per_round=2))
        await asyncio.sleep(0.4)
        stop.set()
        await polling
    assert 5 <= polls["CQ-20261205-000001"] <= 20, polls


def test_the_router_s_own_part_runs_from_the_help_request_s_record_to_the_dispatch_s() -> None:
    """The dispatch row counts from the call; the row under it from the hotline's publish, the router's
    receipt (the issue's "dispatch latency"). A case whose help request was not seen has no figure."""
    now = time.time()
    calls = [Call(n=n, phase="p", scheduled=now, shared_phone=False, sampled=False) for n in range(3)]
    for n, call in enumerate(calls):
        call.case_id, call.replied = f"CQ-20261205-{n + 1:06d}", now + 0.3
    tracker = Tracker(
        calls=calls,
        requested={"CQ-20261205-000001": now + 0.2, "CQ-20261205-000002": now + 0.25},
        dispatched={c.case_id or "": now + 0.4 for c in calls},
    )
    assert tracker.routing(calls[0]) == pytest.approx(0.2)
    assert tracker.routing(calls[2]) is None
    rows = {row[0].strip(): row for row in stage_rows(tracker, calls)}
    dispatch, routing = rows["router dispatch on Kafka"], rows["of it the router (after receipt)"]
    assert dispatch[1:3] == ["3/3", "400"]
    assert routing[1:5] == ["2/3", "150", "200", "200"]  # of 0.2 and 0.15 s: p50, p95, p99


def test_the_timeline_shows_each_stage_s_p99_in_the_window_its_calls_were_sent() -> None:
    """A stall in the middle of a phase shows in its own window, not spread over the whole run."""
    start = time.time()
    calls = [Call(n=n, phase="p", scheduled=start + n, shared_phone=False, sampled=False) for n in range(90)]
    for call in calls:
        call.case_id, call.replied = f"CQ-20261205-{call.n + 1:06d}", call.scheduled + (5 if 30 <= call.n < 60 else 0.2)
    tracker = Tracker(calls=calls)
    header, accept, dispatch, *_ = timeline_rows(tracker, calls, window_s=30)
    assert header[1:] == ["0s", "30s", "60s"]
    assert accept[1:] == ["200", "5000", "200"]
    assert dispatch[1:] == ["-", "-", "-"]  # nothing dispatched
