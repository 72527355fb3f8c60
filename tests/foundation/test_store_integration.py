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


async def test_concurrent_updates_through_versioned_documents_lose_nothing(db) -> None:
    """Plain concurrent `$push`es of one document keep only some on FerretDB; through the claims, all."""
    from common.store import VersionedDocuments

    docs = VersionedDocuments(db["docs"], db["doc_claims"])
    await db["docs"].insert_one({"_id": "case-1", "items": []})
    results = await asyncio.gather(*(docs.update("case-1", lambda d, i=i: {"$push": {"items": i}})
                                     for i in range(20)))
    assert all(r is not None for r in results)
    final = await db["docs"].find_one({"_id": "case-1"})
    assert sorted(final["items"]) == list(range(20)) and final["version"] == 20
    assert await docs.update("case-1", lambda d: None) is None  # nothing to change: no write
    assert await docs.update("missing", lambda d: {"$set": {"x": 1}}) is None
