"""Kafka clients that recover by themselves from a broker restart, and outages that cost little.

Two things aiokafka 0.14 does not do on its own:

- **Renew a producer whose idempotent session is broken.** A broker that crashed (or restarted and lost
  its producer state), or a batch that expired while the broker was away after it had been given sequence
  numbers, leaves the producer's sequence numbers out of step with the broker's: every later send fails with
  `OutOfOrderSequenceNumber` (or `UnknownProducerId`, or fenced epochs) for good. The only cure is a new
  producer, i.e. a new producer id. `renew_broker_producer` swaps the FastStream broker's producer for a
  fresh one; `common.kafka.BatchProducer.renew` does the same for the hot-path producer. What was not
  acknowledged is sent again by whoever sent it (outboxes, redelivered batches); consumers dedupe on
  event id, so a resend is harmless.
- **Back off between failed metadata updates.** While no broker answers, each client's metadata loop
  retries at once, every failed connection asks for another update, and the loop spins: thousands of
  "Unable connect to node" lines a second and a core burnt (aiokafka issue 496). `install_reconnect_backoff`
  makes a failed update wait, exponentially with jitter, up to `RECONNECT_BACKOFF_MAX_S`, resetting once
  an update succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.client import AIOKafkaClient
from aiokafka.errors import (
    IllegalStateError,
    InvalidProducerEpoch,
    InvalidProducerIdMapping,
    InvalidTxnState,
    KafkaError,
    OutOfOrderSequenceNumber,
    ProducerClosed,
    ProducerFenced,
    UnknownProducerId,
)

from common.consumer import backoff_delay

if TYPE_CHECKING:
    from faststream.kafka import KafkaBroker

log = structlog.get_logger("kafka")

RECONNECT_BACKOFF_INITIAL_S = 0.1
RECONNECT_BACKOFF_MAX_S = 2.0
RETIRE_TIMEOUT_S = 5.0

# Errors after which a producer never sends successfully again.
PRODUCER_STATE_LOST: tuple[type[BaseException], ...] = (
    OutOfOrderSequenceNumber,
    UnknownProducerId,
    InvalidProducerEpoch,
    ProducerFenced,
    InvalidProducerIdMapping,
    InvalidTxnState,
    IllegalStateError,
    ProducerClosed,
)


class ProducerStateLost(KafkaError):  # type: ignore[misc]  # aiokafka ships no type information
    """The producer was replaced after its idempotent session broke; this send must be made again."""


def producer_state_lost(exc: BaseException, producer: AIOKafkaProducer | None = None) -> bool:
    """Whether `exc` (from a send through `producer`) means the producer must be replaced."""
    if isinstance(exc, PRODUCER_STATE_LOST):
        return True
    # The sender routine died ("Unexpected error during batch delivery"): nothing is sent any more.
    sender = getattr(producer, "_sender", None)
    task = getattr(sender, "sender_task", None)
    return task is not None and task.done() and not task.cancelled()


async def retire(producer: AIOKafkaProducer, reason: BaseException) -> None:
    """Stop a broken producer: every send still waiting on it fails at once (its sender would never answer),
    then its connections close."""
    accumulator = getattr(producer, "_message_accumulator", None)
    if accumulator is not None:
        accumulator.fail_all(ProducerStateLost(f"producer replaced after {type(reason).__name__}"))
    with contextlib.suppress(Exception):
        await asyncio.wait_for(producer.stop(), RETIRE_TIMEOUT_S)


async def start_fresh(make: Any) -> AIOKafkaProducer:
    """A started producer from `make()`; a start that fails closes what it opened and raises."""
    fresh: AIOKafkaProducer = make()
    try:
        await fresh.start()
    except BaseException:
        with contextlib.suppress(Exception):
            await fresh.stop()
        raise
    return fresh


_RENEWALS: weakref.WeakKeyDictionary[Any, asyncio.Lock] = weakref.WeakKeyDictionary()


def current_producer(broker: KafkaBroker) -> AIOKafkaProducer | None:
    """The aiokafka producer the FastStream broker publishes through now (None before it connected)."""
    config = getattr(broker, "config", None)  # absent on test doubles of the broker
    state = getattr(getattr(config, "producer", None), "_producer", None)
    return getattr(state, "producer", None) if state else None


async def replace_producer(
    lock: asyncio.Lock,
    failed: AIOKafkaProducer,
    reason: BaseException,
    *,
    current: Callable[[], AIOKafkaProducer | None],
    make: Callable[[], AIOKafkaProducer],
    install: Callable[[AIOKafkaProducer], None],
) -> bool:
    """Replace the producer `failed` with a started one from `make()` (a new idempotent session), once however
    many sends failed on it: False if it was replaced already or Kafka cannot be reached yet (the next failed
    send tries again). `current()` says which producer is in use, `install` puts the new one in its place."""
    async with lock:
        if current() is not failed:
            return False
        try:
            fresh = await start_fresh(make)
        except Exception as exc:  # noqa: BLE001 - Kafka still away: keep the old one until the next failure
            log.info("kafka producer renewal postponed", error=repr(exc))
            return False
        install(fresh)
    log.warning("kafka producer renewed after its session broke", error=repr(reason))
    await retire(failed, reason)
    return True


async def renew_broker_producer(broker: KafkaBroker, failed: AIOKafkaProducer, reason: BaseException) -> bool:
    """`replace_producer` for the FastStream broker's own producer."""
    from faststream.kafka.publisher.producer import AioKafkaFastProducerImpl
    from faststream.kafka.publisher.state import RealProducer

    fast = broker.config.producer

    def install(fresh: AIOKafkaProducer) -> None:
        # Only a connected broker's producer gets here (`current_producer` found it); FastStream has no
        # public way to swap it, so its private slot is set.
        if not isinstance(fast, AioKafkaFastProducerImpl):
            raise TypeError(f"cannot renew the producer of {type(fast).__name__}")
        fast._producer = RealProducer(fresh)

    return await replace_producer(
        _RENEWALS.setdefault(broker, asyncio.Lock()),
        failed,
        reason,
        current=lambda: current_producer(broker),
        make=lambda: AIOKafkaProducer(**broker._connection_kwargs),
        install=install,
    )


class KafkaOutage:
    """The process's view of Kafka being unreachable, told by its clients' metadata updates: logged once when
    it starts, every `REMIND_S` while it lasts, and once when it ends, with its length. While it lasts (and
    `QUIET_AFTER_S` after, while the other clients reconnect) aiokafka's own warnings are counted instead of
    logged (`common.logs.KafkaNoiseFilter`): they would repeat every few hundred milliseconds per client."""

    REMIND_S = 15.0
    QUIET_AFTER_S = RECONNECT_BACKOFF_MAX_S

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.reminded_at = 0.0
        self.suppressed = 0

    @property
    def active(self) -> bool:
        return self.started_at is not None

    def quiet(self) -> bool:
        """Whether aiokafka's warnings are to be counted rather than logged now."""
        return self.active or (self.ended_at is not None and self.clock() - self.ended_at < self.QUIET_AFTER_S)

    def failed(self) -> None:
        now = self.clock()
        if self.started_at is None:
            if self.ended_at is not None and now - self.ended_at < self.QUIET_AFTER_S:
                return  # another client of this process still reconnecting after the same outage
            self.started_at = self.reminded_at = now
            self.suppressed = 0
            log.warning("kafka unreachable; clients back off and retry")
        elif now - self.reminded_at >= self.REMIND_S:
            self.reminded_at = now
            log.warning(
                "kafka still unreachable",
                outage_s=round(now - self.started_at, 1),
                suppressed_log_lines=self.suppressed,
            )

    def succeeded(self) -> None:
        if self.started_at is None:
            return
        now = self.clock()
        log.warning(
            "kafka reachable again", outage_s=round(now - self.started_at, 1), suppressed_log_lines=self.suppressed
        )
        self.started_at, self.ended_at = None, now


OUTAGE = KafkaOutage()


def install_reconnect_backoff() -> None:
    """Make every aiokafka client wait between failed metadata updates (see the module's docstring)."""
    if getattr(AIOKafkaClient, "_backoff_installed", False):
        return
    update, get_conn = AIOKafkaClient._metadata_update, AIOKafkaClient._get_conn

    async def metadata_update_with_backoff(self: AIOKafkaClient, cluster_metadata: Any, topics: Any) -> bool:
        ok: bool = await update(self, cluster_metadata, topics)
        failures = getattr(self, "_md_failures", 0)
        if ok:
            self._md_failures = 0
            return ok
        self._md_failures = failures + 1
        await asyncio.sleep(reconnect_delay(failures + 1))
        return ok

    async def get_conn_watched(self: AIOKafkaClient, node_id: Any, **options: Any) -> Any:
        """Every connection a client wants passes here: none to be had is an outage, one had again its end."""
        conn = await get_conn(self, node_id, **options)
        if conn is None:
            OUTAGE.failed()
        elif OUTAGE.started_at is not None:
            OUTAGE.succeeded()
        return conn

    AIOKafkaClient._metadata_update = metadata_update_with_backoff
    AIOKafkaClient._get_conn = get_conn_watched
    AIOKafkaClient._backoff_installed = True


def reconnect_delay(failures: int) -> float:
    return backoff_delay(failures, RECONNECT_BACKOFF_INITIAL_S, RECONNECT_BACKOFF_MAX_S)
