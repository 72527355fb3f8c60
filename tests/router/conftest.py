"""Router test fixtures: one running router (intake, desk, API) per test module, on its own database."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from tests.support.router_harness import RouterHarness, running_router


@pytest.fixture(scope="module")
async def router(
    kafka_bootstrap: str, mongodb_url: str, mongo_client: AsyncMongoClient
) -> AsyncIterator[RouterHarness]:
    database = f"test_router_{uuid.uuid4().hex[:10]}"
    try:
        async with running_router(kafka_bootstrap, mongodb_url, database) as harness:
            yield harness
    finally:
        await mongo_client.drop_database(database)
