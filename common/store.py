"""MongoDB access shared by every service: the client factory and idempotency helpers.

Stay within what both MongoDB and FerretDB 1.24 support: no multi-document transactions, no change
streams, no TTL or partial indexes; unique indexes, upserts and `find_one_and_update` are fine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pymongo import AsyncMongoClient
from pymongo.errors import DuplicateKeyError

if TYPE_CHECKING:
    from pymongo.asynchronous.collection import AsyncCollection

    from common.settings import ServiceSettings


def open_mongo(settings: ServiceSettings) -> AsyncMongoClient[dict[str, Any]]:
    """A client for the service's store; it connects lazily, so a down store does not stop start-up."""
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
        appname=settings.service_name,
    )


async def insert_once(collection: AsyncCollection[dict[str, Any]], document: dict[str, Any]) -> bool:
    """Insert a document whose `_id` (or unique key) is natural; False if it was already there."""
    try:
        await collection.insert_one(document)
    except DuplicateKeyError:
        return False
    return True
