"""The local store keeps every write it acknowledged when PostgreSQL is killed (SIGKILL, as the fault suite
does), on an infra.sh instance of its own. With `synchronous_commit=off` the last few hundred milliseconds
of acknowledged inserts were lost (1 to 17 in each of six kills), and a case the router had stored and
dispatched vanished, so its redelivered request dispatched it a second time."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pymongo
import pytest

from tests.chaos.stack import Infra

pytestmark = pytest.mark.integration

WRITERS = 4
WRITE_FOR_S = 2.0


@pytest.fixture(scope="module")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    stack = Infra(Path(tmp_path_factory.mktemp("store-crash")))
    stack.start()
    try:
        yield stack
    finally:
        stack.reset()


def _write_until_killed(infra: Infra, collection: str) -> list[str]:
    """Insert from `WRITERS` threads, kill PostgreSQL mid-stream; the ids whose insert was acknowledged."""
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        infra.mongodb_url, serverSelectionTimeoutMS=30_000, socketTimeoutMS=5_000
    )
    coll = client["crash"][collection]
    coll.insert_one({"_id": "first"})
    acked: list[str] = []
    stop = threading.Event()

    def writer(k: int) -> None:
        i = 0
        while not stop.is_set():
            try:
                coll.insert_one({"_id": f"{k}-{i}", "pad": "x" * 200})
            except pymongo.errors.PyMongoError:
                return  # the store went away under this insert: not acknowledged
            acked.append(f"{k}-{i}")
            i += 1

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(WRITERS)]
    for thread in threads:
        thread.start()
    time.sleep(WRITE_FOR_S)
    infra.kill("postgres")  # while the writers are still inserting
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    client.close()
    return acked


def _stored_ids(infra: Infra, collection: str) -> set[str]:
    client: pymongo.MongoClient[dict[str, object]] = pymongo.MongoClient(
        infra.mongodb_url, serverSelectionTimeoutMS=30_000
    )
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                return {str(doc["_id"]) for doc in client["crash"][collection].find({}, {"_id": 1})}
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)  # FerretDB reconnects to the restarted PostgreSQL
    finally:
        client.close()


@pytest.mark.parametrize("kill", [1, 2])
def test_a_killed_postgresql_loses_no_acknowledged_write(infra: Infra, kill: int) -> None:
    collection = f"kill{kill}"
    acked = _write_until_killed(infra, collection)
    infra.start()  # PostgreSQL again (crash recovery replays its WAL), FerretDB reconnects
    stored = _stored_ids(infra, collection)
    lost = [doc_id for doc_id in acked if doc_id not in stored]
    assert len(acked) > 100, "the writers were not writing when PostgreSQL was killed"
    assert lost == [], f"{len(lost)} of {len(acked)} acknowledged inserts lost after the kill"
