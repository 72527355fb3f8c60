"""structlog configuration: JSON logs with bound ids, ID-card and phone numbers masked."""

from __future__ import annotations

import logging
import re
import sys
from typing import Any

import structlog

# GB 11643 ID-card numbers (18 chars, last may be X) and Chinese mobile / landline numbers.
_ID_CARD = re.compile(r"(?<![0-9A-Za-z])(\d{6})\d{8}(\d{3}[\dXx])(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)(\+?86[- ]?)?(1[3-9]\d)\d{4}(\d{4})(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)(0\d{2,3})-?\d{3,4}(\d{4})(?!\d)")


def mask_text(text: str) -> str:
    """Mask ID-card and phone numbers in free text, keeping enough to tell records apart."""
    text = _ID_CARD.sub(lambda m: f"{m.group(1)}{'*' * 11}{m.group(2)[-1]}", text)
    text = _MOBILE.sub(lambda m: f"{m.group(1) or ''}{m.group(2)}****{m.group(3)}", text)
    return _LANDLINE.sub(lambda m: f"{m.group(1)}-****{m.group(2)}", text)


def _mask(value: Any) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_mask(v) for v in value)
    return value


def mask_personal_data(_logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: nothing personal leaves in clear, whatever the caller bound."""
    return {k: _mask(v) for k, v in event_dict.items()}


class KafkaNoiseFilter(logging.Filter):
    """aiokafka logs a warning or an error for every failed reconnect, fetch and heartbeat, per client, every
    few hundred milliseconds while Kafka is away. During an outage (`common.kafka_recovery.OUTAGE`, which
    logs its start, its length and its end itself) they are counted, not logged; otherwise one line per
    message kind is let through every `window_s`, the next one saying how many were held back."""

    def __init__(self, window_s: float = 5.0) -> None:
        super().__init__()
        self.window_s = window_s
        self._last: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or not record.name.startswith("aiokafka"):
            return True
        from common.kafka_recovery import OUTAGE

        if OUTAGE.quiet():
            OUTAGE.suppressed += 1
            return False
        key = (record.name, str(record.msg))
        last = self._last.get(key)
        if last is not None and record.created - last[0] < self.window_s:
            self._last[key] = (last[0], last[1] + 1)
            return False
        if last is not None and last[1]:
            record.msg = f"{record.msg} (and {last[1]} like it in the last {self.window_s:.0f} s)"
        self._last[key] = (record.created, 0)
        return True


def configure_logging(service: str, level: str = "INFO", json: bool | None = None) -> None:
    """Configure structlog and route stdlib logging (uvicorn, aiokafka, FastStream) through it."""
    if json is None:
        json = not sys.stdout.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        mask_personal_data,
    ]
    renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(KafkaNoiseFilter())
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
