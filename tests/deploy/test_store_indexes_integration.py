"""The local store answers lookups by key from an index (deploy/local/ferretdb-indexes.sql).

FerretDB 1.24 filters with `_jsonb->$1 @> $2`, which its own btree indexes cannot serve, so without help
every lookup, update and delete by `_id` scans the collection. infra.sh gives every such btree index a GIN
twin and plans statements with their parameters known: pinned here on the test run's own store, through
the same PostgreSQL FerretDB uses (`infra.sh psql`). On MongoDB (compose, production) the store's own
indexes do this, and there is nothing of the local stack to check."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from common.store import serves_queries_from_indexes

pytestmark = pytest.mark.integration

INFRA = Path(__file__).resolve().parents[2] / "deploy" / "local" / "infra.sh"


def _psql(sql: str) -> list[str]:
    """Rows of one statement, run on FerretDB's PostgreSQL database of this test run's instance."""
    done = subprocess.run(
        ["bash", str(INFRA), "psql", "-At", "-c", sql], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, f"infra.sh psql failed: {done.stderr.strip()}"
    return [line for line in done.stdout.splitlines() if line]


def _table_of(schema: str, collection: str) -> str:
    """The PostgreSQL table FerretDB keeps a collection in (its metadata says)."""
    rows = _psql(
        f"SELECT _jsonb->>'table' FROM {schema}._ferretdb_database_metadata WHERE _jsonb->>'_id' = '{collection}'"
    )
    assert len(rows) == 1, f"FerretDB's metadata names no table for {collection}: {rows}"
    return f"{schema}.{rows[0]}"


def _gin_keys(table: str) -> set[str]:
    """The document keys that have a GIN index on `(_jsonb -> key)`."""
    defs = _psql(f"SELECT indexdef FROM pg_indexes WHERE schemaname || '.' || tablename = '{table}'")
    return {d.split("(_jsonb -> '")[1].split("'")[0] for d in defs if "USING gin" in d and "(_jsonb -> '" in d}


def _plan(table: str, key: str, value: object) -> str:
    """PostgreSQL's plan for FerretDB's own form of an equality filter, as its prepared statements send it."""
    literal = json.dumps(value).replace("'", "''")
    return "\n".join(
        _psql(
            f"PREPARE q(text, jsonb) AS SELECT _jsonb FROM {table} WHERE _jsonb->$1 @> $2; "
            f"EXPLAIN EXECUTE q('{key}', '{literal}')"
        )
    )


async def test_lookups_by_id_and_by_an_indexed_key_are_served_by_an_index_and_stay_exact(db, db_name) -> None:
    people = db["people"]
    await people.insert_many(
        [{"_id": f"P{i:04d}", "phone": f"1380000{i % 50:04d}", "pad": "x" * 300} for i in range(400)]
        + [{"_id": "LIST", "phone": ["13911112222", "13933334444"]}, {"_id": "OBJ", "phone": {"x": 1}}]
    )
    await people.create_index([("phone", 1), ("pad", 1)])
    if await serves_queries_from_indexes(db):  # MongoDB: its own indexes serve these
        for query in ({"_id": "P0007"}, {"phone": "13800000007"}):
            plan = json.dumps((await people.find(query).explain())["queryPlanner"]["winningPlan"])
            assert "COLLSCAN" not in plan, plan
    else:
        table = _table_of(db_name, "people")
        assert {"_id", "phone", "pad"} <= _gin_keys(table), "the collection's indexes got no GIN twins"
        plan = _plan(table, "_id", "P0007")
        assert "Index Scan" in plan and "_gin" in plan, plan
        assert "Seq Scan" not in _plan(table, "phone", "13800000007")
        # An index made before the trigger existed (a store kept from before) gets its twin when infra.sh
        # starts, which runs relief_gin_twins_all.
        for name in _psql(f"SELECT indexname FROM pg_indexes WHERE schemaname || '.' || tablename = '{table}'"):
            if name.endswith("_gin"):
                _psql(f"DROP INDEX {db_name}.{name}")
        assert not _gin_keys(table)
        _psql("SELECT public.relief_gin_twins_all()")
        assert {"_id", "phone", "pad"} <= _gin_keys(table)

    # The answers are those of a scan: arrays hold the value, objects match whole, updates and deletes by
    # id touch one document.
    assert (await people.find_one({"_id": "P0007"}) or {}).get("phone") == "13800000007"
    assert sorted(d["_id"] for d in await people.find({"phone": "13800000007"}).to_list()) == [
        f"P{i:04d}" for i in range(7, 400, 50)
    ]
    assert [d["_id"] for d in await people.find({"phone": "13933334444"}).to_list()] == ["LIST"]
    assert [d["_id"] for d in await people.find({"phone": {"x": 1}}).to_list()] == ["OBJ"]
    assert (await people.update_one({"_id": "P0008"}, {"$set": {"phone": "moved"}})).modified_count == 1
    assert [d["_id"] for d in await people.find({"phone": "moved"}).to_list()] == ["P0008"]
    assert (await people.delete_one({"_id": "P0009"})).deleted_count == 1
    assert await people.count_documents({}) == 401


async def test_a_small_working_set_of_large_documents_is_looked_up_by_index_not_scanned(db, db_name) -> None:
    """A document over 2 KB is kept out of line (TOAST), so a few hundred of them make a table of a few
    pages, and the planner, costing a scan by those pages, took a scan over the GIN index: every row's
    filter then read and decompressed its document (an e2e surge's intake lookups, 7.5 ms each against
    0.2 ms). infra.sh tells PostgreSQL to take an index wherever one serves the filter."""
    intakes = db["intakes"]
    await intakes.insert_many([{"_id": f"C{i:04d}", "open": True, "pad": os.urandom(3000).hex()} for i in range(300)])
    if await serves_queries_from_indexes(db):  # MongoDB: its own _id index, whatever the documents' size
        plan = json.dumps((await intakes.find({"_id": "C0007"}).explain())["queryPlanner"]["winningPlan"])
        assert "COLLSCAN" not in plan, plan
    else:
        table = _table_of(db_name, "intakes")
        _psql(f"ANALYZE {table}")  # as autovacuum would: the statistics say how small the table looks
        pages = int(_psql(f"SELECT relpages FROM pg_class WHERE oid = '{table}'::regclass")[0])
        assert pages < 30, f"the documents were meant to live out of line: {pages} pages"
        plan = _plan(table, "_id", "C0007")
        assert "Index Scan" in plan and "_gin" in plan, plan
        assert "Seq Scan" in _plan(table, "open", True), "a key with no index is still answered by a scan"
    assert [d["_id"] for d in await intakes.find({"_id": "C0007"}, {"_id": 1}).to_list()] == ["C0007"]
    assert (await intakes.update_one({"_id": "C0008"}, {"$set": {"open": False}})).modified_count == 1
    assert [d["_id"] for d in await intakes.find({"open": False}, {"_id": 1}).to_list()] == ["C0008"]
