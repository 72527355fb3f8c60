"""Run services as real processes (uvicorn), the way `make run` does, for end-to-end tests."""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import MongoClient

ROOT = Path(__file__).resolve().parents[2]


def _ephemeral_ports() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux's default


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port for a process to listen on, chosen *below* the kernel's ephemeral range. A port from
    that range (what binding to port 0 returns) can be taken as the local end of an outgoing connection
    (to Kafka, to the store) between this check and the process's own bind, which then fails."""
    low, _ = _ephemeral_ports()
    first, last = (15000, low - 1) if low > 16000 else (1025, 9999)
    for _ in range(500):
        port = random.randint(first, last)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port between {first} and {last}")


@dataclass
class ServiceProcess:
    name: str
    port: int
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                f"services.{self.name}.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def stop(self, sig: str = "term") -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if sig == "kill":
            self.process.kill()
        else:
            self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=3).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class ServiceSet:
    """The given services, each with its own port, database and consumer group for this run."""

    kafka: str
    mongodb_url: str
    names: tuple[str, ...]
    tmp: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    isolated_topics: bool = False  # every service on topics prefixed with this run's namespace
    services: dict[str, ServiceProcess] = field(default_factory=dict)

    def __post_init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        self.namespace = f"e2e-{run}." if self.isolated_topics else ""
        for name in self.names:
            prefix = name.upper()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            env.update(
                {
                    f"{prefix}_KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                    f"{prefix}_MONGODB_URL": self.mongodb_url,
                    f"{prefix}_MONGODB_DATABASE": f"e2e_{run}_{name}",
                    f"{prefix}_KAFKA_GROUP_ID": f"e2e-{run}-{name}",
                    f"{prefix}_ENVIRONMENT": "test",
                    f"{prefix}_LOG_JSON": "true",
                }
            )
            if self.isolated_topics:
                # Topics of their own: other tests' history on the shared broker stays out of this run.
                env[f"{prefix}_TOPIC_NAMESPACE"] = self.namespace
            env.update(self.extra_env)
            self.services[name] = ServiceProcess(name, free_port(), env, self.tmp / f"{name}.log")

    def __getitem__(self, name: str) -> ServiceProcess:
        return self.services[name]

    def start(self) -> None:
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready()

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def databases(self) -> list[str]:
        return [s.env[f"{s.name.upper()}_MONGODB_DATABASE"] for s in self.services.values()]

    def __enter__(self) -> ServiceSet:
        """Start every service and wait until each is ready; on exit stop them and drop their databases."""
        try:
            self.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
        client: MongoClient[dict[str, Any]] = MongoClient(self.mongodb_url)
        with client:
            for name in self.databases():
                client.drop_database(name)
