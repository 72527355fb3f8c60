"""What the services rely on in the store, pinned against the real MongoDB-compatible server.

FerretDB 1.24 applies an update as read-then-write without a transaction, so two concurrent conditional
updates (`{"version": v}` compare-and-set, `$inc` counters) can both succeed. What stays atomic is a
unique index: of many concurrent inserts of one key, exactly one wins. Every "only once" guarantee in
this project (one payment per idempotency key, one text per event, one writer per case version, one
case number per call) is therefore a unique-index insert.
"""

from __future__ import annotations

import asyncio

import pytest

from common.store import insert_once

pytestmark = pytest.mark.integration


async def test_of_concurrent_claims_on_one_key_exactly_one_wins(db) -> None:
    claims = db["claims"]
    for round_ in range(10):
        results = await asyncio.gather(*(insert_once(claims, {"_id": f"case-1@{round_}", "by": i})
                                         for i in range(20)))
        assert sum(results) == 1, f"round {round_}: {sum(results)} winners"
    assert await claims.count_documents({}) == 10


async def test_a_unique_secondary_index_refuses_a_second_payment(db) -> None:
    ledger = db["ledger"]
    await ledger.create_index("idempotency_key", unique=True)
    results = await asyncio.gather(*(insert_once(ledger, {"idempotency_key": "CQ-1:P5.2b:once", "n": i})
                                     for i in range(20)))
    assert sum(results) == 1
    assert await ledger.count_documents({}) == 1
