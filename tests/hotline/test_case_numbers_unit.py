"""The case-number floor: every call would update one counter, so a process keeps one raise in flight."""

from __future__ import annotations

import asyncio

import pytest

from services.hotline.intake import CaseNumbers

pytestmark = pytest.mark.unit


class SlowCounter:
    """Stands in for the store's counter: each raise waits until the test lets it through."""

    def __init__(self) -> None:
        self.raises: list[tuple[str, int]] = []
        self.gate = asyncio.Event()
        self.fail = False

    async def raise_case_number_floor(self, day: str, seq: int) -> None:
        await self.gate.wait()
        if self.fail:
            raise OSError("store unreachable")
        self.raises.append((day, seq))


async def test_calls_during_a_raise_leave_their_number_to_it_and_do_not_wait() -> None:
    counter = SlowCounter()
    numbers = CaseNumbers(counter)  # type: ignore[arg-type]  # a stand-in for the store's counter
    first = asyncio.ensure_future(numbers.claimed("CQ-20260215-000020"))
    await asyncio.sleep(0)
    others = [numbers.claimed(f"CQ-20260215-{n:06d}") for n in (21, 40, 60, 80)]
    await asyncio.wait_for(asyncio.gather(*others), timeout=1)  # returned without any store write
    assert counter.raises == []
    counter.gate.set()
    await first
    assert counter.raises == [("20260215", 20), ("20260215", 80)]  # 40 and 60 covered by 80


async def test_a_failed_raise_does_not_fail_the_call() -> None:
    counter = SlowCounter()
    counter.gate.set()
    counter.fail = True
    numbers = CaseNumbers(counter)  # type: ignore[arg-type]  # a stand-in for the store's counter
    await numbers.claimed("CQ-20260215-000020")
    counter.fail = False
    await numbers.claimed("CQ-20260215-000040")
    assert counter.raises == [("20260215", 40)]
