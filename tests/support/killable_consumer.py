"""A consumer process for the crash test: applies its effect durably, then (optionally) hangs so the
test can SIGKILL it before the offset is committed.

    python -m tests.support.killable_consumer BOOTSTRAP TOPIC GROUP MONGODB_URL DB [--hang]
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from faststream.kafka import KafkaRouter
from pymongo import AsyncMongoClient

from common.kafka import SUBSCRIBER_ACK_POLICY, make_broker
from common.settings import ServiceSettings
from common.store import insert_once


async def main() -> None:
    parser = argparse.ArgumentParser()
    for name in ("bootstrap", "topic", "group", "mongodb_url", "db"):
        parser.add_argument(name)
    parser.add_argument("--hang", action="store_true")
    args = parser.parse_args()

    mongo: AsyncMongoClient = AsyncMongoClient(args.mongodb_url)
    db = mongo[args.db]
    broker = make_broker(ServiceSettings(service_name="killable", kafka_bootstrap_servers=args.bootstrap))
    router = KafkaRouter()

    @router.subscriber(
        args.topic,
        group_id=args.group,
        auto_offset_reset="earliest",
        ack_policy=SUBSCRIBER_ACK_POLICY,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    async def handle(body: dict) -> None:
        await db["runs"].insert_one({"key": body["key"]})
        await insert_once(db["effects"], {"_id": body["key"]})  # idempotent effect, durable here
        if args.hang:
            await asyncio.sleep(3600)  # killed here, after the effect and before the commit

    broker.include_router(router)
    await broker.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await broker.stop()
    await mongo.close()


if __name__ == "__main__":
    asyncio.run(main())
