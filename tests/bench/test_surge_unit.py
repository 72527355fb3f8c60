"""The e2e benchmark's load and its measurement: the one phone's calls are sampled too, and the polling
of the sampled cases is fair, so one case slow to arrive does not hold up the figures of the others."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from benchmarks.e2e.surge import Call, Tracker, poll, send_calls

pytestmark = pytest.mark.unit


def answering(statuses: dict[str, str]) -> httpx.AsyncClient:
    """A hotline that takes every call and answers each case's status from `statuses` ("received" if unknown)."""
    taken: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            taken.append(f"CQ-20261205-{len(taken) + 1:06d}")
            return httpx.Response(201, json={"case_id": taken[-1]})
        case_id = request.url.path.split("/")[4]
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
    """Two polls a round: the two oldest cases never reach the stage, the three after them do at once.
    Polled oldest first, the three would never be looked at; polled longest-ago first, they are."""
    now = time.time()
    cases = [Call(n=n, phase="p", scheduled=now - 10 + n, shared_phone=False, sampled=True) for n in range(5)]
    for n, call in enumerate(cases):
        call.case_id = f"CQ-20261205-{n + 1:06d}"
    tracker = Tracker(sampled=cases)
    stop = asyncio.Event()
    shown = {c.case_id: "dispatched" for c in cases[2:] if c.case_id}
    async with answering(shown) as client:
        polling = asyncio.create_task(poll(client, tracker, "hotline", stop, interval_s=0.01, per_round=2))
        await asyncio.sleep(0.3)
        stop.set()
        await polling
    assert [c.shown is not None for c in cases] == [False, False, True, True, True]
    assert all(0 <= c.gap["hotline"] < 10 for c in cases[2:])  # first polled: the gap runs from the call
    assert all(c.polled["hotline"] > now for c in cases)
