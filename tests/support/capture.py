"""A capturing HTTP endpoint (for texts and alerts sent out) and an SLA topic reader, for integration tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiokafka import AIOKafkaConsumer

from contracts.events.notify import SLA_EVENTS_TOPIC
from tests.support.kafka import unique_name


class CaptureServer:
    """Records JSON POSTs by path; `fail_first[text]` makes that many first requests whose body contains
    `text` answer 503 (other tests' messages on the shared topics may arrive too)."""

    def __init__(self) -> None:
        self.received: dict[str, list[dict[str, Any]]] = {}
        self.fail_first: dict[str, int] = {}
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # http.server names its handlers so
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}"
                body = json.loads(raw)
                text = json.dumps(body, ensure_ascii=False)
                with outer.lock:
                    match = next((k for k, n in outer.fail_first.items() if n and k in text), None)
                    left = 1 if match else 0
                    if match:
                        outer.fail_first[match] -= 1
                    else:
                        outer.received.setdefault(self.path, []).append(body)
                self.send_response(503 if left else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"id": "gw-1"}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def of(self, path: str, case_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return [b for b in self.received.get(path, []) if case_id in json.dumps(b, ensure_ascii=False)]

    def __enter__(self) -> CaptureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.asynccontextmanager
async def sla_events(bootstrap: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect every SLA event published while the block runs (the topic is shared: filter by case id)."""
    seen: list[dict[str, Any]] = []
    consumer = AIOKafkaConsumer(
        SLA_EVENTS_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=unique_name("notify-it"),
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await consumer.start()
    # Make sure the partitions are assigned (and positioned) before anything is published.
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=200)
    for tp in consumer.assignment():
        await consumer.position(tp)

    async def pump() -> None:
        while True:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    body = json.loads(record.value)
                    body["_received_at"] = datetime.now(UTC)
                    seen.append(body)

    task = asyncio.create_task(pump())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


def of_case(events: list[dict[str, Any]], case_id: str, **match: Any) -> list[dict[str, Any]]:
    return [e for e in events if e["case_id"] == case_id and all(e.get(k) == v for k, v in match.items())]
