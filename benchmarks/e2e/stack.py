"""The four services as their own uvicorn processes (as `make run` starts them) on the history's
databases and this run's topics, and what the benchmark reads from outside them: store commands from
`/metrics`, CPU and memory from /proc, for the services and for the broker and the store."""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from benchmarks.e2e.settings import SERVICES, E2eBench
from tests.support.processes import ROOT, ServiceProcess, free_port


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


POSTGRES = "PostgreSQL (all)"  # the server and its backends: the process tree's CPU


def tree_cpu_seconds(root: int) -> float:
    """CPU of a process, its live children and the children it has reaped (PostgreSQL's backends)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == root:
            total += sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime stime cutime cstime
        elif ppid == root:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def infra_pids(instance: str) -> dict[str, int]:
    """The broker's and the store's processes of this infrastructure instance (deploy/local/infra.sh)."""
    pids = {}
    for name, label in (("kafka", "kafka JVM"), ("ferretdb", "FerretDB"), ("postgres", POSTGRES)):
        path = ROOT / ".cache" / instance / f"{name}.pid"
        if path.exists() and Path(f"/proc/{path.read_text().strip()}").exists():
            pids[label] = int(path.read_text().strip())
    return pids


@dataclass
class Stack:
    kafka: str
    mongodb_url: str
    namespace: str
    run: str
    opts: E2eBench

    def __post_init__(self) -> None:
        self.logs = Path(tempfile.mkdtemp(prefix=f"bench-e2e-{self.run}-"))
        self.services: dict[str, ServiceProcess] = {}
        for name in SERVICES:
            prefix = name.upper()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                f"{prefix}_KAFKA_BOOTSTRAP_SERVERS": self.kafka,
                f"{prefix}_MONGODB_URL": self.mongodb_url,
                f"{prefix}_MONGODB_DATABASE": self.opts.history_database(name),
                f"{prefix}_KAFKA_GROUP_ID": f"bench-e2e-{self.run}-{name}",
                f"{prefix}_TOPIC_NAMESPACE": self.namespace,
                f"{prefix}_LOG_JSON": "true",
                f"{prefix}_LOG_LEVEL": "WARNING",
            }
            self.services[name] = ServiceProcess(name, free_port(), env, self.logs / f"{name}.log")

    def start(self) -> None:
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            service.wait_ready(timeout=120)

    def stop(self) -> None:
        for service in self.services.values():
            service.stop()

    def url(self, name: str) -> str:
        return self.services[name].url

    def pids(self, instance: str) -> dict[str, int]:
        out = {name: s.process.pid for name, s in self.services.items() if s.process is not None}
        return out | infra_pids(instance)

    async def warmed(self, client: httpx.AsyncClient, timeout_s: float) -> dict[str, bool]:
        """Wait until every part each service loads at start-up has loaded (`service_warmed` in `/metrics`),
        at most `timeout_s`; whether each `<service> <part>` had."""
        deadline = time.monotonic() + timeout_s
        while True:
            parts: dict[str, bool] = {}
            for name in SERVICES:
                for line in (await client.get(f"{self.url(name)}/metrics")).text.splitlines():
                    if line.startswith("service_warmed{"):
                        labels, value = line.rsplit(" ", 1)
                        part = labels.split('"')[1]
                        parts[f"{name} {part}"] = value == "1"
            if all(parts.values()) or time.monotonic() > deadline:
                return parts
            await asyncio.sleep(0.5)

    async def store_commands(self, client: httpx.AsyncClient) -> dict[str, dict[str, float]]:
        """Every service's `store_commands_total` by command name, its `store_command_seconds_total` by
        `seconds <command> <collection>` and its `store_collection_commands_total` by
        `sent <command> <collection>`."""
        out: dict[str, dict[str, float]] = {}
        for name in SERVICES:
            counts: dict[str, float] = {}
            for line in (await client.get(f"{self.url(name)}/metrics")).text.splitlines():
                if line.startswith("store_commands_total{"):
                    labels, value = line.rsplit(" ", 1)
                    counts[labels.split('"')[1]] = int(value)
                elif line.startswith("store_command_seconds_total{"):
                    labels, value = line.rsplit(" ", 1)
                    parts = labels.split('"')
                    counts[f"seconds {parts[1]} {parts[3]}"] = float(value)
                elif line.startswith("store_collection_commands_total{"):
                    labels, value = line.rsplit(" ", 1)
                    parts = labels.split('"')
                    counts[f"sent {parts[1]} {parts[3]}"] = int(value)
            out[name] = counts
        return out


def cpu_of(pids: dict[str, int]) -> dict[str, float]:
    return {
        name: tree_cpu_seconds(pid) if name == POSTGRES else cpu_seconds(pid)
        for name, pid in pids.items()
        if Path(f"/proc/{pid}").exists()
    }
