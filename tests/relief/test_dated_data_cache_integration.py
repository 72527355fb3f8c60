"""The intake's batches reuse the added standards and rule parameters they read for `dated_data_cache_s`,
against the real store: one read while it is fresh, an addition through the same process seen at once, one
through another process once the time is up; the admin's own reads always ask the store."""

from __future__ import annotations

import asyncio
from datetime import date
from decimal import Decimal

import pytest
from pymongo import AsyncMongoClient

from common.store import CommandCounter
from services.relief.domain.standards import DibaoStandard
from services.relief.store import ReliefStore

pytestmark = pytest.mark.integration


def standard(district: str, day: date, urban: str) -> DibaoStandard:
    return DibaoStandard(district=district, effective_from=day, urban=Decimal(urban), rural=Decimal("600"))


async def test_the_added_standards_are_read_once_while_fresh_and_additions_are_seen(db, mongodb_url):
    await ReliefStore(db).ensure_indexes()
    counter = CommandCounter()
    client: AsyncMongoClient = AsyncMongoClient(mongodb_url, tz_aware=True, event_listeners=[counter])
    try:
        here = ReliefStore(client[db.name], dated_data_ttl_s=0.5)
        elsewhere = ReliefStore(db)  # another relief process on the same database

        def reads() -> int:
            return counter.sent[("find", "standards")]

        assert await here.added_dated_data(cached=True) == ([], [])
        assert reads() == 1
        assert await here.added_dated_data(cached=True) == ([], [])
        assert reads() == 1, "a fresh read is reused"
        assert await here.added_dated_data() == ([], [])
        assert reads() == 2, "an uncached read (the admin's views) asks the store"

        # Added through this process: the next cached read has it, without waiting for the time to pass.
        first = standard("500103", date(2027, 1, 1), "900")
        assert await here.add_standard(first, added_by="admin-1")
        assert (await here.added_dated_data(cached=True))[0] == [first]
        # A refused duplicate changes nothing, but costs no stale answer either.
        assert not await here.add_standard(first, added_by="admin-1")
        assert (await here.added_dated_data(cached=True))[0] == [first]

        # Added through another process: not seen while the last read is fresh, seen once it is not.
        before = reads()
        second = standard("500104", date(2027, 1, 1), "880")
        assert await elsewhere.add_standard(second, added_by="admin-2")
        assert (await here.added_dated_data(cached=True))[0] == [first]
        assert reads() == before
        await asyncio.sleep(0.6)
        assert sorted(s.district for s in (await here.added_dated_data(cached=True))[0]) == ["500103", "500104"]
        assert reads() == before + 1

        # Without a time to live (the default), every read asks the store.
        plain = ReliefStore(client[db.name])
        before = reads()
        await plain.added_dated_data(cached=True)
        await plain.added_dated_data(cached=True)
        assert reads() == before + 2
    finally:
        await client.close()
