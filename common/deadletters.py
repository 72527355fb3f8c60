"""Dead letters and backlogs, visible and fixable, in every service with Kafka.

- The admin lists the dead letters of the topics the service consumes (`<topic>.dlq`, the records its
  delivery policy gave up on, with the error in headers), shows one, and replays chosen ones after a
  fix: the original value goes back on its original topic. A replay is claimed by a unique insert
  (`dead_letter_replays`), so replaying one twice publishes it once; the consumers are idempotent by
  event id besides.
- `delivery_figures` gives what `/metrics` and the coordinators' status view show: outbox backlog per
  collection (this process's: the documents it wrote or swept whose events wait to be published),
  consumer lag per group and topic, dead letters per topic.
- `python -m common.deadletters --url http://127.0.0.1:8002 list|show|replay ...` is the command line
  for the same API (it signs a development admin token unless `--token` is given).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import httpx
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import BaseModel, Field
from pymongo.errors import DuplicateKeyError

from common.errors import NotFound
from common.kafka import publish
from common.logs import mask_text
from common.principal import Principal, Role
from contracts.events import dlq_topic

if TYPE_CHECKING:
    from common.app import Runtime

log = structlog.get_logger("deadletters")

LIST_LIMIT = 200  # the newest dead letters listed per topic partition
PREVIEW_CHARS = 2000
KAFKA_FIGURES_TIMEOUT_S = 5.0
DLQ_HEADERS = "x-dlq-"


class DeadLetter(BaseModel):
    """One dead-lettered record: where it came from, why it was given up, when."""

    topic: str  # the dead-letter topic
    partition: int
    offset: int
    key: str | None
    at: datetime
    service: str | None
    error: str | None
    error_type: str | None
    attempts: int | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    replayed: bool = False


class DeadLetterDetail(DeadLetter):
    value_preview: str = Field(description="the record's value, ID-card and phone numbers masked, cut short")
    value_bytes: int
    headers: dict[str, str]


MAX_PARTITION = 2**31 - 1  # Kafka's partitions and offsets (int32, int64)
MAX_OFFSET = 2**63 - 1


class DeadLetterRef(BaseModel):
    topic: str = Field(max_length=300)
    partition: int = Field(ge=0, le=MAX_PARTITION)
    offset: int = Field(ge=0, le=MAX_OFFSET)


class ReplayRequest(BaseModel):
    items: list[DeadLetterRef] = Field(min_length=1, max_length=500)


class ReplayOutcome(BaseModel):
    topic: str
    partition: int
    offset: int
    outcome: str  # replayed | already_replayed | not_found | truncated (only its head was kept: not replayable)
    to_topic: str | None = None


class ReplayReply(BaseModel):
    replayed: int
    outcomes: list[ReplayOutcome]


class TopicLag(BaseModel):
    group: str
    topic: str
    lag: int


class DeliveryFigures(BaseModel):
    """What is waiting: events not yet published, records not yet consumed, records given up on."""

    service: str
    kafka_reachable: bool
    outbox_backlog: dict[str, int]  # collection -> documents whose events wait to be published (this process)
    consumer_lag: list[TopicLag]
    dead_letters: dict[str, int]  # dead-letter topic -> records in it (every service's)


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", "replace")


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.lstrip("-").isdigit() else None


def _dead_letter(record: Any, replayed: set[str]) -> DeadLetterDetail:
    headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ()) if v is not None}
    value = record.value or b""
    return DeadLetterDetail(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=_text(record.key),
        at=datetime.fromtimestamp(record.timestamp / 1000, UTC),
        service=headers.get("x-dlq-service"),
        error=headers.get("x-dlq-error"),
        error_type=headers.get("x-dlq-error-type"),
        attempts=_int(headers.get("x-dlq-attempts")),
        original_topic=headers.get("x-dlq-original-topic"),
        original_partition=_int(headers.get("x-dlq-original-partition")),
        original_offset=_int(headers.get("x-dlq-original-offset")),
        replayed=_ref_id(record.topic, record.partition, record.offset) in replayed,
        value_preview=mask_text(value[:PREVIEW_CHARS].decode("utf-8", "replace")),
        value_bytes=len(value),
        headers={k: mask_text(v) for k, v in headers.items()},
    )


def _ref_id(topic: str, partition: int, offset: int) -> str:
    return f"{topic}:{partition}:{offset}"


class DeadLetters:
    """The service's dead-letter topics, read without a group (nothing committed, nothing disturbed)."""

    def __init__(self, runtime: Runtime[Any]) -> None:
        self.runtime = runtime

    @property
    def topics(self) -> list[str]:
        return sorted({dlq_topic(t) for topics in self.runtime.consumers.values() for t in topics})

    async def _assigned(self, topics: Iterable[str]) -> tuple[AIOKafkaConsumer, list[TopicPartition]]:
        """A group-less consumer holding every partition of `topics` (a topic not yet created has none)."""
        names = sorted(set(topics))
        consumer = AIOKafkaConsumer(
            *names,
            bootstrap_servers=self.runtime.settings.kafka_bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        for _ in range(50):  # the subscription's metadata arrives shortly after the start
            if consumer.assignment() or not names:
                break
            await asyncio.sleep(0.05)
        return consumer, sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))

    async def _read(self, topics: Iterable[str], *, newest: int) -> list[Any]:
        topics = list(topics)
        if not topics:  # a topic asked for that is not one of ours: nothing to read (a subscription-less
            return []  # consumer would wait for metadata that never comes)
        consumer, parts = await self._assigned(topics)
        try:
            if not parts:
                return []
            ends = await consumer.end_offsets(parts)
            starts = await consumer.beginning_offsets(parts)
            wanted = {tp: ends[tp] for tp in parts if ends[tp] > starts[tp]}
            for tp in parts:
                consumer.seek(tp, max(starts[tp], ends[tp] - newest))
            records: list[Any] = []
            while wanted:
                batch = await consumer.getmany(*wanted, timeout_ms=1000)
                if not batch:
                    break
                for tp, got in batch.items():
                    records += got
                    if got and got[-1].offset + 1 >= wanted[tp]:
                        del wanted[tp]
            return records
        finally:
            await consumer.stop()

    async def _replayed(self) -> set[str]:
        docs = await self.runtime.db["dead_letter_replays"].find({}, {"_id": 1}).to_list(None)
        return {str(d["_id"]) for d in docs}

    async def entries(self, topic: str | None = None) -> list[DeadLetter]:
        topics = [t for t in self.topics if topic in (None, t)]
        mine = self.runtime.settings.service_name
        records, replayed = await asyncio.gather(self._read(topics, newest=LIST_LIMIT), self._replayed())
        found = [_dead_letter(r, replayed) for r in records]
        return [
            DeadLetter(**d.model_dump(exclude={"value_preview", "value_bytes", "headers"}))
            for d in sorted(found, key=lambda d: d.at, reverse=True)
            if d.service in (None, mine)
        ]

    async def _one(self, ref: DeadLetterRef) -> Any | None:
        if ref.topic not in self.topics:
            return None
        consumer, parts = await self._assigned([ref.topic])
        try:
            tp = TopicPartition(ref.topic, ref.partition)
            if tp not in parts:
                return None
            start, end = (await consumer.beginning_offsets([tp]))[tp], (await consumer.end_offsets([tp]))[tp]
            if not start <= ref.offset < end:
                return None
            consumer.seek(tp, ref.offset)
            got = (await consumer.getmany(tp, timeout_ms=5000, max_records=1)).get(tp, [])
            return got[0] if got and got[0].offset == ref.offset else None
        finally:
            await consumer.stop()

    async def show(self, ref: DeadLetterRef) -> DeadLetterDetail:
        record = await self._one(ref)
        if record is None:
            raise NotFound("没有这条死信", f"no dead letter at {ref.topic}/{ref.partition}/{ref.offset}")
        return _dead_letter(record, await self._replayed())

    async def replay(self, refs: list[DeadLetterRef], by: Principal) -> ReplayReply:
        """Put each record back on its original topic, once: the claim comes first, so a crash between
        the claim and the send leaves it claimed and unsent (shown as replayed; replay it from the record
        on the original topic's consumer side if so — the log line names it)."""
        if self.runtime.broker is None:  # pragma: no cover - every service with dead letters has Kafka
            raise RuntimeError("no broker")
        outcomes: list[ReplayOutcome] = []
        claims = self.runtime.db["dead_letter_replays"]
        for ref in refs:
            record = await self._one(ref)
            if record is None:
                outcomes.append(ReplayOutcome(**ref.model_dump(), outcome="not_found"))
                continue
            if dict(record.headers or ()).get("x-dlq-truncated-from-bytes") is not None:
                outcomes.append(ReplayOutcome(**ref.model_dump(), outcome="truncated"))
                continue
            headers = [(k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_HEADERS)]
            original = dict(record.headers or ()).get("x-dlq-original-topic")
            to_topic = original.decode() if original else ref.topic.removesuffix(".dlq")
            try:
                await claims.insert_one(
                    {"_id": _ref_id(ref.topic, ref.partition, ref.offset), "at": datetime.now(UTC), "by": by.sub}
                )
            except DuplicateKeyError:
                outcomes.append(ReplayOutcome(**ref.model_dump(), outcome="already_replayed", to_topic=to_topic))
                continue
            replay_headers = {k: v.decode("utf-8", "replace") for k, v in headers if v is not None}
            replay_headers["x-replayed-from"] = _ref_id(ref.topic, ref.partition, ref.offset)
            await publish(
                self.runtime.broker, record.value or b"", topic=to_topic, key=record.key, headers=replay_headers
            )
            log.info("dead letter replayed", dead_letter=_ref_id(ref.topic, ref.partition, ref.offset), to=to_topic)
            outcomes.append(ReplayOutcome(**ref.model_dump(), outcome="replayed", to_topic=to_topic))
        return ReplayReply(replayed=sum(o.outcome == "replayed" for o in outcomes), outcomes=outcomes)


async def delivery_figures(runtime: Runtime[Any]) -> DeliveryFigures:
    """The service's backlogs now; Kafka's part is left out (and `kafka_reachable` false) if it does not
    answer within a few seconds."""
    # What this process knows is unpublished, without a store query: a count of `outbox_pending` made
    # FerretDB decode the whole collection (notify's cases: about 10 s of its CPU at 12,000 cases), on every
    # scrape; and the flag stays set after a publish (the outbox is cleared by the next change).
    backlog = {aggregates.collection.name: aggregates.backlog for aggregates in runtime.aggregates}
    lag: list[TopicLag] = []
    dead: dict[str, int] = {}
    reachable = False
    if runtime.broker is not None and runtime.consumers:
        with contextlib.suppress(Exception):
            lag, dead = await asyncio.wait_for(_kafka_figures(runtime), KAFKA_FIGURES_TIMEOUT_S)
            reachable = True
    return DeliveryFigures(
        service=runtime.settings.service_name,
        kafka_reachable=reachable,
        outbox_backlog=backlog,
        consumer_lag=lag,
        dead_letters=dead,
    )


async def _kafka_figures(runtime: Runtime[Any]) -> tuple[list[TopicLag], dict[str, int]]:
    topics = {t for ts in runtime.consumers.values() for t in ts}
    dlqs = {dlq_topic(t) for t in topics}
    consumer, parts = await DeadLetters(runtime)._assigned(topics | dlqs)
    admin = AIOKafkaAdminClient(bootstrap_servers=runtime.settings.kafka_bootstrap_servers)
    try:
        await admin.start()
        ends = await consumer.end_offsets(parts) if parts else {}
        starts = await consumer.beginning_offsets(parts) if parts else {}
        dead = {t: sum(ends[tp] - starts[tp] for tp in parts if tp.topic == t) for t in sorted(dlqs)}
        lag: list[TopicLag] = []
        for group, group_topics in sorted(runtime.consumers.items()):
            committed = await admin.list_consumer_group_offsets(group)
            for topic in sorted(group_topics):
                behind = 0
                for tp in (tp for tp in parts if tp.topic == topic):
                    meta = committed.get(tp)
                    position = meta.offset if meta is not None and meta.offset >= 0 else starts[tp]
                    behind += max(0, ends[tp] - position)
                lag.append(TopicLag(group=group, topic=topic, lag=behind))
        return lag, dead
    finally:
        await consumer.stop()
        with contextlib.suppress(Exception):
            await admin.close()


def metrics_lines(figures: DeliveryFigures) -> list[str]:
    """The figures in Prometheus' text format, for `/metrics`."""
    lines = [
        "# HELP outbox_backlog_documents Documents whose events still wait to be published, by collection.",
        "# TYPE outbox_backlog_documents gauge",
        *(f'outbox_backlog_documents{{collection="{c}"}} {n}' for c, n in sorted(figures.outbox_backlog.items())),
        "# HELP kafka_figures_up 1 when Kafka answered for the lag and dead-letter figures below.",
        "# TYPE kafka_figures_up gauge",
        f"kafka_figures_up {int(figures.kafka_reachable)}",
        "# HELP consumer_lag_records Records not yet consumed, by consumer group and topic.",
        "# TYPE consumer_lag_records gauge",
        *(f'consumer_lag_records{{group="{x.group}",topic="{x.topic}"}} {x.lag}' for x in figures.consumer_lag),
        "# HELP dead_letter_records Records in each dead-letter topic this service writes to (all writers).",
        "# TYPE dead_letter_records gauge",
        *(f'dead_letter_records{{topic="{t}"}} {n}' for t, n in sorted(figures.dead_letters.items())),
    ]
    return lines


def main(argv: list[str] | None = None) -> int:
    """The command line: list, show and replay a service's dead letters through its admin API."""
    parser = argparse.ArgumentParser(prog="python -m common.deadletters", description=__doc__.split("\n")[0])
    parser.add_argument("--url", required=True, help="the service, e.g. http://127.0.0.1:8002")
    parser.add_argument("--token", help="an admin token (default: a development token signed here)")
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list")
    listing.add_argument("--topic")
    for name in ("show", "replay"):
        one = commands.add_parser(name)
        one.add_argument("topic")
        one.add_argument("partition", type=int)
        one.add_argument("offsets", type=int, nargs="+" if name == "replay" else 1)
    args = parser.parse_args(argv)
    token = args.token or _development_token()
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=30) as http:
        if args.command == "list":
            reply = http.get("/api/v1/admin/dead-letters", params={"topic": args.topic} if args.topic else None)
        elif args.command == "show":
            reply = http.get(f"/api/v1/admin/dead-letters/{args.topic}/{args.partition}/{args.offsets[0]}")
        else:
            items = [{"topic": args.topic, "partition": args.partition, "offset": o} for o in args.offsets]
            reply = http.post("/api/v1/admin/dead-letters/replay", json={"items": items})
    print(json.dumps(reply.json(), ensure_ascii=False, indent=2))
    return 0 if reply.is_success else 1


def _development_token() -> str:
    from common.auth import issue_token
    from common.settings import ServiceSettings

    class TokenSettings(ServiceSettings):
        model_config = ServiceSettings.model_config | {"env_prefix": "AUTH_"}
        service_name: str = "deadletters-cli"

    return issue_token(TokenSettings(), sub="deadletters-cli", role=Role.ADMIN)


if __name__ == "__main__":
    sys.exit(main())
