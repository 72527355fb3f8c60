"""Notify's case documents under concurrent writers from several notify instances (FerretDB included)."""

from __future__ import annotations

import asyncio

import pytest

from services.notify.store import NotifyStore

pytestmark = pytest.mark.component


async def test_concurrent_writers_of_one_case_version_have_exactly_one_winner(db) -> None:
    """Two notify instances applying different events to one case: one write wins, the other re-reads."""
    store = NotifyStore(db)
    assert await store.save("CQ-20260215-000001", None, {"state": {"n": 0}})
    for round_ in range(5):
        previous = await store.load("CQ-20260215-000001")
        wins = await asyncio.gather(*(store.save("CQ-20260215-000001", previous, {"state": {"n": round_, "by": i}})
                                      for i in range(10)))
        assert sum(wins) == 1, f"round {round_}: {sum(wins)} winners"
    assert (await store.load("CQ-20260215-000001"))["version"] == 6
