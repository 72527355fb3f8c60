"""A private, single-node KRaft Kafka broker for tests that stop and restart Kafka.

It runs from the same jars as deploy/local/infra.sh (`.cache/kafka/libs`, fetched by `infra.sh fetch`),
configured the same way, on free ports with its own data directory, so stopping it never disturbs the
shared broker other tests use. `kafka.tools.StorageTool format` once, then `kafka.Kafka server.properties`.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
LIBS = ROOT / ".cache" / "kafka" / "libs"
LOG4J = ROOT / "deploy" / "local" / "log4j2.properties"
HOST = "127.0.0.1"


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((HOST, port)) == 0


class PrivateKafka:
    def __init__(self, workdir: Path) -> None:
        if not any(LIBS.glob("kafka_2.13-*.jar")):
            raise RuntimeError(f"Kafka jars missing under {LIBS}: run `bash deploy/local/infra.sh fetch`")
        self.workdir = workdir
        self.data = workdir / "kafka-data"
        self.port = free_port()
        self.controller_port = free_port()
        self.config = workdir / "server.properties"
        self.log = workdir / "kafka.out"
        self.process: subprocess.Popen[bytes] | None = None
        java_home = os.environ.get("JAVA_HOME")
        self.java = str(Path(java_home) / "bin" / "java") if java_home else (shutil.which("java") or "java")

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def _java(self, *args: str) -> list[str]:
        return [
            self.java,
            "-Xms128m",
            "-Xmx384m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-Djava.awt.headless=true",
            f"-Dkafka.logs.dir={self.workdir}",
            f"-Dlog4j2.configurationFile={LOG4J}",
            "-cp",
            f"{LIBS}/*",
            *args,
        ]

    def _write_config(self) -> None:
        self.config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{HOST}:{self.controller_port}",
                    "controller.listener.names=CONTROLLER",
                    f"listeners=PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://{HOST}:{self.port}",
                    "inter.broker.listener.name=PLAINTEXT",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.data}",
                    "default.replication.factor=1",
                    "min.insync.replicas=1",
                    "offsets.topic.replication.factor=1",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "offsets.topic.num.partitions=3",
                    "transaction.state.log.num.partitions=3",
                    "num.partitions=1",
                    "auto.create.topics.enable=true",
                    "group.initial.rebalance.delay.ms=0",
                    "num.network.threads=2",
                    "num.io.threads=2",
                    "num.recovery.threads.per.data.dir=1",
                    "",
                ]
            )
        )

    def format(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        self._write_config()
        cluster_id = "-"
        while cluster_id.startswith("-"):  # the storage tool would read a leading "-" as an option
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        with self.log.open("ab") as out:
            subprocess.run(
                self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(self.config)),
                check=True,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=120,
            )

    def start(self, timeout: float = 90) -> None:
        """Start the broker (formatting its storage the first time) and wait until it serves metadata."""
        if not (self.data / "meta.properties").exists():
            self.format()
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(self.config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        import asyncio

        from aiokafka.admin import AIOKafkaAdminClient

        async def brokers() -> bool:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=3000)
            try:
                await admin.start()
                return bool((await admin.describe_cluster()).get("brokers"))
            finally:
                await admin.close()

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"private Kafka exited early:\n{self.tail()}")
            if _port_open(self.port):
                try:
                    if asyncio.run(brokers()):
                        return
                except Exception:  # noqa: BLE001 - not ready yet
                    pass
            time.sleep(0.3)
        raise RuntimeError(f"private Kafka not ready after {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a clean shutdown), SIGKILL if it takes longer than `timeout`; waits until the port is free."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: the broker dies without writing its producer-state snapshots, as in a crash."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.kill()
        self.process.wait(10)
        deadline = time.monotonic() + 10
        while _port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)

    def tail(self, lines: int = 40) -> str:
        text = ""
        for path in (self.log, self.workdir / "kafka.log"):
            if path.exists():
                text += f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        return text
