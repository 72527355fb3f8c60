"""Shared fixtures: the real Kafka and MongoDB-compatible store, one fresh database per test."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient

from tests.support.infra import HOW_TO, TestInfraSettings, docker_engine_answers


@pytest.fixture(scope="session")
def infra() -> TestInfraSettings:
    settings = TestInfraSettings()
    if settings.kafka_bootstrap_servers and settings.mongodb_url:
        return settings
    if docker_engine_answers():
        from testcontainers.kafka import KafkaContainer
        from testcontainers.mongodb import MongoDbContainer

        kafka = KafkaContainer().with_kraft()
        kafka.start()
        mongo = MongoDbContainer("mongo:7")
        mongo.start()
        return TestInfraSettings(
            kafka_bootstrap_servers=kafka.get_bootstrap_server(), mongodb_url=mongo.get_connection_url()
        )
    pytest.fail(HOW_TO, pytrace=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: TestInfraSettings) -> str:
    assert infra.kafka_bootstrap_servers
    return infra.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def mongodb_url(infra: TestInfraSettings) -> str:
    assert infra.mongodb_url
    return infra.mongodb_url


@pytest.fixture(scope="session")
async def mongo_client(mongodb_url: str) -> AsyncIterator[AsyncMongoClient]:
    client: AsyncMongoClient = AsyncMongoClient(
        mongodb_url, tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000
    )
    await client.admin.command("ping")
    yield client
    await client.close()


@pytest.fixture
async def db_name(mongo_client: AsyncMongoClient) -> AsyncIterator[str]:
    """A fresh database name, dropped after the test."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    yield name
    await mongo_client.drop_database(name)


@pytest.fixture
def db(mongo_client: AsyncMongoClient, db_name: str):
    return mongo_client[db_name]
