"""The consumer policy (ARCHITECTURE.md, "Delivery rules"), as one FastStream broker middleware.

Subscribers run with `AckPolicy.ACK`, which commits after the handler returns *and* after it raises.
So everything that decides a message's fate happens here, inside the handler's scope:

- success: return; the offset is committed after the handler's effect is durable;
- a transient failure (store or broker unreachable): retry with backoff, then `NackMessage`, which seeks
  back so the message is redelivered rather than lost, at the cost of pausing that partition;
- any other failure: retry with backoff, then publish the record to `<topic>.dlq` with the error in its
  headers, then acknowledge, so one poison message never blocks a queue;
- a body that cannot be decoded or validated: straight to the DLQ (retrying cannot fix it).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import structlog
from faststream import BaseMiddleware
from faststream.exceptions import HandlerException, NackMessage
from pydantic import ValidationError
from pymongo.errors import AutoReconnect, ConnectionFailure, ExecutionTimeout, NetworkTimeout

from common.store import store_busy, store_unavailable
from contracts.events import dlq_topic

if TYPE_CHECKING:
    from aiokafka import ConsumerRecord
    from faststream.kafka import KafkaBroker
    from faststream.message import StreamMessage

log = structlog.get_logger("consumer")

TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionFailure,
    AutoReconnect,
    NetworkTimeout,
    ExecutionTimeout,
    ConnectionError,
    TimeoutError,
)


class PermanentError(Exception):
    """Raised by a handler when retrying cannot help: the message goes straight to the DLQ."""


# A dead letter carries the record unchanged up to this size; a larger one keeps only its head.
DLQ_MAX_VALUE_BYTES = 512 * 1024
DLQ_KEPT_HEAD_BYTES = 64 * 1024


def _is_transient(exc: BaseException) -> bool:
    from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

    # FerretDB's backend gone is as transient as the server gone: redelivered, never dead-lettered.
    return (
        isinstance(exc, (*TRANSIENT_ERRORS, KafkaConnectionError, KafkaTimeoutError))
        or store_busy(exc)
        or store_unavailable(exc)
    )


def _is_permanent(exc: BaseException) -> bool:
    return isinstance(exc, (ValidationError, PermanentError, UnicodeDecodeError, ValueError))


def backoff_delay(attempt: int, initial_s: float, max_s: float) -> float:
    """Bounded exponential backoff with jitter (half to all of the step), `attempt` counting from 1: the one
    backoff of every retry loop here, so that many clients failing at once do not retry in step."""
    return min(max_s, initial_s * 2.0 ** (attempt - 1)) * (0.5 + random.random() / 2)


def _header(record: ConsumerRecord, name: str) -> str | None:
    headers: Sequence[tuple[str, bytes | None]] = record.headers or ()
    for key, value in headers:
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


class DeliveryPolicy:
    """A broker middleware factory; `bind(broker)` once the broker exists so dead letters can be sent."""

    def __init__(
        self,
        service: str,
        *,
        max_attempts: int = 4,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.max_attempts = max_attempts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.sleep = sleep
        self.broker: KafkaBroker | None = None

    def bind(self, broker: KafkaBroker) -> None:
        self.broker = broker

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter; attempt counts from 1."""
        return backoff_delay(attempt, self.backoff_initial_s, self.backoff_max_s)

    def __call__(self, msg: Any, /, *, context: Any, **_: Any) -> _DeliveryMiddleware:
        return _DeliveryMiddleware(msg, context=context, policy=self)

    async def dead_letter(self, record: ConsumerRecord, exc: BaseException, attempts: int) -> None:
        """Publish the record unchanged to `<topic>.dlq`, the error in headers; raise if that fails."""
        if self.broker is None:  # pragma: no cover - wiring error
            raise RuntimeError("DeliveryPolicy is not bound to a broker")
        headers = {k: v.decode("utf-8", "replace") for k, v in (record.headers or ()) if v is not None}
        headers.update(
            {
                "x-dlq-error": f"{type(exc).__name__}: {exc}"[:4000],
                "x-dlq-error-type": type(exc).__name__,
                "x-dlq-original-topic": record.topic,
                "x-dlq-original-partition": str(record.partition),
                "x-dlq-original-offset": str(record.offset),
                "x-dlq-attempts": str(attempts),
                "x-dlq-service": self.service,
            }
        )
        value = record.value or b""
        if len(value) > DLQ_MAX_VALUE_BYTES:
            # A record near the broker's size limit does not fit again with the error headers: the dead
            # letter keeps its head and says so (such a record cannot be replayed; its producer must resend).
            headers["x-dlq-truncated-from-bytes"] = str(len(value))
            value = value[:DLQ_KEPT_HEAD_BYTES]
        from common.kafka import publish

        await publish(self.broker, value, topic=dlq_topic(record.topic), key=record.key, headers=headers)
        log.error(
            "message dead-lettered",
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            attempts=attempts,
            error=headers["x-dlq-error"],
        )


class _DeliveryMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: Any, policy: DeliveryPolicy) -> None:
        super().__init__(msg, context=context)
        self.policy = policy
        self.handled = False

    async def on_receive(self) -> None:
        record = self.msg
        structlog.contextvars.bind_contextvars(
            topic=getattr(record, "topic", None),
            case_id=_header(record, "case-id"),
            event_id=_header(record, "event-id"),
            correlation_id=_header(record, "correlation_id"),
        )

    async def consume_scope(self, call_next: Callable[[Any], Awaitable[Any]], msg: StreamMessage[Any]) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call_next(msg)
            except (HandlerException, asyncio.CancelledError):
                raise
            except Exception as exc:
                if _is_permanent(exc) and not _is_transient(exc):
                    await self._give_up(exc, attempt)
                    return None
                if attempt < self.policy.max_attempts:
                    delay = self.policy.backoff(attempt)
                    log.warning("handler failed, retrying", attempt=attempt, delay_s=round(delay, 3), error=repr(exc))
                    await self.policy.sleep(delay)
                    continue
                if _is_transient(exc):
                    log.error("transient failure persists; message will be redelivered", error=repr(exc))
                    raise NackMessage() from exc
                await self._give_up(exc, attempt)
                return None

    async def _give_up(self, exc: BaseException, attempts: int) -> None:
        try:
            await self.policy.dead_letter(self.msg, exc, attempts)
        except Exception as dlq_exc:
            # The DLQ is unreachable: redeliver rather than lose the message.
            log.error("dead-lettering failed; message will be redelivered", error=repr(dlq_exc))
            raise NackMessage() from dlq_exc
        self.handled = True

    async def after_processed(
        self, exc_type: Any = None, exc_val: BaseException | None = None, exc_tb: Any = None
    ) -> bool:
        try:
            if exc_val is None or isinstance(exc_val, (HandlerException, asyncio.CancelledError)):
                return False
            # Raised outside the handler call: the body could not be parsed or no handler fits it.
            # Should the DLQ be unreachable, the NackMessage raised here reaches the ack middleware.
            await self._give_up(exc_val, 1)
            return True
        finally:
            structlog.contextvars.unbind_contextvars("topic", "case_id", "event_id", "correlation_id")
