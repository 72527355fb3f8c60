"""What the services rely on in the store, pinned against the real MongoDB-compatible server.

FerretDB 1.24 applies an update as read-then-write without a transaction, so two concurrent conditional
updates (`{"version": v}` compare-and-set, `$inc` counters) can both succeed. What stays atomic is a
unique index: of many concurrent inserts of one key, exactly one wins. Every "only once" guarantee in
this project (one payment per idempotency key, one text per event, one writer per case version, one
case number per call) is therefore a unique-index insert.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from common.store import insert_once

pytestmark = pytest.mark.integration


async def test_of_concurrent_claims_on_one_key_exactly_one_wins(db) -> None:
    claims = db["claims"]
    for round_ in range(10):
        results = await asyncio.gather(*(insert_once(claims, {"_id": f"case-1@{round_}", "by": i}) for i in range(20)))
        assert sum(results) == 1, f"round {round_}: {sum(results)} winners"
    assert await claims.count_documents({}) == 10


async def test_a_unique_secondary_index_refuses_a_second_payment(db) -> None:
    ledger = db["ledger"]
    await ledger.create_index("idempotency_key", unique=True)
    results = await asyncio.gather(
        *(insert_once(ledger, {"idempotency_key": "CQ-1:P5.2b:once", "n": i}) for i in range(20))
    )
    assert sum(results) == 1
    assert await ledger.count_documents({}) == 1


async def test_query_indexes_are_made_as_the_store_uses_them(db) -> None:
    """MongoDB gets the indexes as declared. FerretDB 1.24 uses an index only for an equality on one field
    (the local stack's GIN twins, deploy/local/ferretdb-indexes.sql), so there each declared index's first
    field gets one of its own, once, and a descending first key (a sort) none."""
    from common.store import create_query_indexes, serves_queries_from_indexes

    cases = db["cases"]
    await cases.insert_one({"_id": "CQ-1", "district": "500103"})
    declared = [
        (cases, [("district", 1), ("status", 1)]),
        (cases, [("district", 1), ("received_at", -1)]),
        (cases, [("received_at", -1)]),
        (cases, [("phone_key", 1)]),
    ]
    created = await create_query_indexes(db, declared)
    names = set(await cases.index_information())
    mongo = await serves_queries_from_indexes(db)
    assert created == mongo
    if mongo:
        assert names == {"_id_", "district_1_status_1", "district_1_received_at_-1", "received_at_-1", "phone_key_1"}
    else:
        assert names == {"_id_", "district_1", "phone_key_1"}
    assert [d["_id"] for d in await cases.find({"district": "500103"}).to_list()] == ["CQ-1"]


async def test_query_indexes_are_created_on_a_store_that_uses_them() -> None:
    from types import SimpleNamespace

    from common.store import create_query_indexes

    made: list[object] = []

    class Admin:
        async def command(self, name: str) -> dict[str, object]:
            assert name == "buildInfo"
            return {"version": "7.0.14"}  # MongoDB: no ferretdbVersion

    class Collection:
        async def create_index(self, keys: object) -> None:
            made.append(keys)

    class Client:
        admin = Admin()

    # Stand-ins with only the parts of a database and its collections that the function uses.
    fake_db: Any = SimpleNamespace(client=Client())
    fake_indexes: list[Any] = [(Collection(), [("district", 1)]), (Collection(), [("a", 1)])]
    assert await create_query_indexes(fake_db, fake_indexes)
    assert made == [[("district", 1)], [("a", 1)]]


async def test_old_version_claims_are_pruned_and_versioned_writes_go_on(db) -> None:
    from datetime import UTC, datetime, timedelta

    from common.aggregates import Aggregates, Codec
    from common.store import prune_claims

    docs = Aggregates(db["cases"], db["case_claims"], Codec(load=dict, dump=dict))

    def bump(doc: dict | None) -> dict:
        return {"_id": "CQ-1", "n": (doc or {"n": 0})["n"] + 1}

    for _ in range(3):
        await docs.change("CQ-1", bump)
    old = datetime.now(UTC) - timedelta(days=2)
    await db["case_claims"].update_many({"_id": {"$in": ["CQ-1@1", "CQ-1@2"]}}, {"$set": {"at": old}})
    await db["intake_claims"].insert_one({"_id": "X@1", "at": old})
    await db["audit"].insert_one({"_id": "kept", "at": old})  # not a claims collection: never touched

    assert await prune_claims(db, timedelta(days=1)) == {"case_claims": 2, "intake_claims": 1}
    assert sorted([c["_id"] async for c in db["case_claims"].find()]) == ["CQ-1@3"]
    assert await db["audit"].count_documents({}) == 1
    updated = await docs.change("CQ-1", bump)
    assert updated is not None and updated.version == 4 and updated.value["n"] == 4


def test_a_claims_collection_must_say_so_in_its_name(db) -> None:
    from common.store import VersionClaims

    with pytest.raises(ValueError, match="_claims"):
        VersionClaims(db["case_versions"], db["cases"])


async def test_a_stale_claim_on_a_document_never_created_is_cleared(db) -> None:
    """A writer claimed a new document's first version and died before inserting it (the fault suite saw a
    notify case stuck for minutes): the claim, once stale, must not block every later writer for good."""
    from datetime import timedelta

    from common.store import VersionClaims

    claims = VersionClaims(db["cases_claims"], db["cases"], stale_after=timedelta(0))
    assert await claims.claim_many([("CQ-1", 1)]) == {"CQ-1"}  # then the writer died, nothing inserted
    assert await claims.claim("CQ-1", 1) is False  # found stale and cleared
    assert await claims.claim("CQ-1", 1) is True  # the next writer gets it
    await db["cases"].insert_one({"_id": "CQ-2", "version": 1})
    assert await claims.claim_many([("CQ-2", 1)]) == {"CQ-2"}
    assert await claims.claim("CQ-2", 1) is False and await claims.claim("CQ-2", 1) is False  # written: kept


async def test_concurrent_inserts_share_commands_and_each_caller_gets_its_own_outcome(db) -> None:
    from pymongo.errors import DuplicateKeyError

    from common.store import GroupInserts

    await db["grouped"].insert_one({"_id": "taken"})
    inserts = GroupInserts(db["grouped"])
    ids = [f"d{n}" for n in range(50)] + ["taken"]
    outcomes = await asyncio.gather(*(inserts.insert({"_id": i, "n": 1}) for i in ids), return_exceptions=True)
    assert outcomes[:50] == [None] * 50
    assert isinstance(outcomes[50], DuplicateKeyError)  # only the duplicate's own caller hears of it
    assert await db["grouped"].count_documents({}) == 51
    assert inserts.commands == 1  # the 51 calls arriving together went in one command
    first = asyncio.ensure_future(inserts.insert({"_id": "first"}))
    await asyncio.sleep(0)  # its command is in flight: the next ones wait for it, then go together
    await asyncio.gather(first, *(inserts.insert({"_id": f"e{n}"}) for n in range(20)))
    assert inserts.commands == 3
    await inserts.insert({"_id": "alone"})  # nothing in flight: no waiting for company
    assert inserts.commands == 4
