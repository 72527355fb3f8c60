"""`common.store.find_by` on a store that serves equalities only (FerretDB): a batch is many lookups, a few
at a time for each read, so a small read does not queue behind a large one in the same process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from common import store

pytestmark = pytest.mark.unit


class _Client:
    pass


class _Lookups:
    """A collection whose every equality lookup takes 10 ms, noting how many run at once."""

    def __init__(self) -> None:
        self.database = self
        self.client = _Client()
        self.in_flight = self.most = 0

    def find(self, query: dict[str, Any], projection: dict[str, Any] | None = None) -> _Lookups.Cursor:
        return _Lookups.Cursor(self, query)

    class Cursor:
        def __init__(self, owner: _Lookups, query: dict[str, Any]) -> None:
            self.owner, self.query = owner, query

        async def to_list(self) -> list[dict[str, Any]]:
            self.owner.in_flight += 1
            self.owner.most = max(self.owner.most, self.owner.in_flight)
            await asyncio.sleep(0.01)
            self.owner.in_flight -= 1
            return [{"_id": self.query["_id"]}]


async def test_a_small_read_does_not_wait_behind_a_large_one() -> None:
    lookups = _Lookups()
    store._INDEXED_QUERIES[lookups.client] = False  # as FerretDB answers buildInfo
    try:
        large = asyncio.create_task(store.find_by(lookups, "_id", [f"big-{n}" for n in range(400)]))  # type: ignore[arg-type]
        await asyncio.sleep(0.005)  # the large read's lookups are under way
        small = await store.find_by(lookups, "_id", ["a", "b", "a"])  # type: ignore[arg-type]
        small_done = large.done()
        assert [d["_id"] for d in small] == ["a", "b"]  # in the order asked, each once
        assert not small_done  # 400 lookups, 8 at a time, take 0.5 s; the small read took about 10 ms
        assert len(await large) == 400
        assert lookups.most <= 2 * store.LOOKUPS_IN_FLIGHT  # each read keeps its own bound
    finally:
        store._INDEXED_QUERIES.pop(lookups.client, None)
