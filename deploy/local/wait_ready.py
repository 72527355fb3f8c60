"""Wait until the local Kafka broker and/or FerretDB really answer (used by infra.sh).

Kafka is ready when a Metadata request lists at least one broker; FerretDB is ready
when `ping` returns ok. Uses aiokafka/pymongo when importable (the project's venv),
otherwise a small standard-library probe, so infra can start before pip has finished.

Exit codes: 0 all ready; bit 1 = Kafka not ready, bit 2 = FerretDB not ready
(so 1, 2 or 3). The failing service is named on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import logging
import os
import socket
import struct
import sys
import time
from typing import Any

# ---------------------------------------------------------------- Kafka probes


async def kafka_ready_aiokafka(bootstrap: str) -> bool:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
    try:
        await admin.start()
        cluster = await admin.describe_cluster()
        return bool(cluster.get("brokers"))
    finally:
        await admin.close()


def _kafka_request(sock: socket.socket, api_key: int, version: int, body: bytes) -> bytes:
    client_id = b"wait_ready"
    # Request header v1: api_key, api_version, correlation_id, client_id (non-flexible).
    header = struct.pack(">hhih", api_key, version, 1, len(client_id)) + client_id
    msg = header + body
    sock.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", _recv_exact(sock, 4))[0]
    return _recv_exact(sock, size)[4:]  # drop correlation_id


def kafka_ready_stdlib(bootstrap: str) -> bool:
    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=3) as sock:
        sock.settimeout(3)
        # Metadata v4 (Kafka 4 dropped v0-3): topics=null (all), allow_auto_topic_creation=false.
        resp = _kafka_request(sock, 3, 4, struct.pack(">ib", -1, 0))
        _throttle, n_brokers = struct.unpack(">ii", resp[:8])
        return n_brokers > 0


# ---------------------------------------------------------------- MongoDB probes


async def mongo_ready_pymongo(url: str) -> bool:
    from pymongo import AsyncMongoClient

    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        url, serverSelectionTimeoutMS=2000, connectTimeoutMS=2000
    )
    try:
        reply = await client.admin.command("ping")
        return reply.get("ok") == 1
    finally:
        await client.close()


def mongo_ready_stdlib(url: str) -> bool:
    hostport = url.split("://", 1)[-1].split("/", 1)[0].split(",")[0].rsplit("@", 1)[-1]
    host, _, port = hostport.partition(":")
    # BSON {ping: 1, $db: "admin"} sent as an OP_MSG (opcode 2013), the only opcode FerretDB needs.
    elems = b"\x10ping\x00" + struct.pack("<i", 1)
    elems += b"\x02$db\x00" + struct.pack("<i", 6) + b"admin\x00"
    doc = struct.pack("<i", len(elems) + 5) + elems + b"\x00"
    body = struct.pack("<i", 0) + b"\x00" + doc
    msg = struct.pack("<iiii", 16 + len(body), 1, 0, 2013) + body
    with socket.create_connection((host, int(port or 27017)), timeout=3) as sock:
        sock.settimeout(3)
        sock.sendall(msg)
        size = struct.unpack("<i", _recv_exact(sock, 4))[0]
        reply = _recv_exact(sock, size - 4)
    # An "ok" double equal to 1.0 in the reply document means success.
    return b"\x01ok\x00" + struct.pack("<d", 1.0) in reply


# ---------------------------------------------------------------- helpers


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("connection closed")
        buf += chunk
    return buf


def _alive(pid: int | None) -> bool:
    if not pid:
        return True  # not watching a process
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _probe(name: str, target: str, use_libs: bool) -> tuple[bool, str]:
    try:
        if name == "kafka":
            if use_libs:
                ok = await asyncio.wait_for(kafka_ready_aiokafka(target), 8)
            else:
                ok = await asyncio.to_thread(kafka_ready_stdlib, target)
        else:
            if use_libs:
                ok = await asyncio.wait_for(mongo_ready_pymongo(target), 8)
            else:
                ok = await asyncio.to_thread(mongo_ready_stdlib, target)
        return ok, "" if ok else "not ready yet"
    except Exception as exc:  # noqa: BLE001 - any failure just means "not ready yet"
        return False, f"{type(exc).__name__}: {exc}"


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kafka", help="bootstrap servers, e.g. 127.0.0.1:9092")
    p.add_argument("--kafka-pid", type=int, help="give up early if this process dies")
    p.add_argument("--mongo", help="MongoDB URL, e.g. mongodb://127.0.0.1:27017/")
    p.add_argument("--mongo-pid", type=int, help="give up early if this process dies")
    p.add_argument("--timeout", type=float, default=90.0)
    p.add_argument("--stdlib", action="store_true", help="do not use aiokafka/pymongo")
    args = p.parse_args()

    # aiokafka logs every refused connection at ERROR; while waiting that is expected noise.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    installed = all(importlib.util.find_spec(name) is not None for name in ("aiokafka", "pymongo"))
    use_libs = installed and not args.stdlib

    pending = {}
    if args.kafka:
        pending["kafka"] = (args.kafka, args.kafka_pid)
    if args.mongo:
        pending["mongo"] = (args.mongo, args.mongo_pid)
    labels = {"kafka": "Kafka", "mongo": "FerretDB"}
    last_err: dict[str, str] = {}
    dead: set[str] = set()
    deadline = time.monotonic() + args.timeout

    while pending and time.monotonic() < deadline:
        for name, (_target, pid) in list(pending.items()):
            if not _alive(pid):
                dead.add(name)
                del pending[name]
        # Probe the services concurrently so a slow one does not delay the other.
        names = list(pending)
        results = await asyncio.gather(*(_probe(n, pending[n][0], use_libs) for n in names))
        for name, (ok, err) in zip(names, results, strict=True):
            if ok:
                del pending[name]
            else:
                last_err[name] = err[:300]
        if pending:
            await asyncio.sleep(0.5)

    failed = set(pending) | dead
    for name in sorted(failed):
        if name in dead:
            print(f"wait_ready: {labels[name]} process exited before it was ready", file=sys.stderr)
        else:
            why = last_err.get(name, "no answer")
            print(
                f"wait_ready: {labels[name]} NOT ready after {args.timeout:.0f}s (last error: {why})", file=sys.stderr
            )
    return (1 if "kafka" in failed else 0) | (2 if "mongo" in failed else 0)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
