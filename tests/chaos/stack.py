"""The fault suite's stack: Kafka, PostgreSQL and FerretDB of its own (deploy/local/infra.sh, an instance of
its own on free ports, so killing them disturbs no other test), two instances of each of the four services
(same store, same consumer groups, each on its own port), and the means to kill any of them hard and bring
it back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.processes import ROOT, ServiceProcess, free_port

SERVICES = ("hotline", "router", "relief", "notify")
INFRA_SH = ROOT / "deploy" / "local" / "infra.sh"


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(entry.name))
            except (OSError, ValueError, IndexError):
                continue
    return out


@dataclass
class Infra:
    """An infra.sh instance of the fault suite's own: started, killed (SIGKILL) and started again."""

    workdir: Path
    name: str = field(default_factory=lambda: f"chaos-{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        self.ports = {
            "KAFKA_PORT": free_port(),
            "KAFKA_CONTROLLER_PORT": free_port(),
            "MONGO_PORT": free_port(),
            "PG_PORT": free_port(),
        }
        self.env = {**os.environ, "INFRA_INSTANCE": self.name, **{k: str(v) for k, v in self.ports.items()}}
        self.run_dir = ROOT / ".cache" / self.name
        self.log = self.workdir / "infra.log"

    @property
    def kafka(self) -> str:
        return f"127.0.0.1:{self.ports['KAFKA_PORT']}"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.ports['MONGO_PORT']}/"

    def _infra(self, command: str, timeout: float = 240) -> None:
        with self.log.open("ab") as out:
            subprocess.run(
                ["bash", str(INFRA_SH), command],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=timeout,
            )

    def start(self) -> None:
        """Start whatever of Kafka, PostgreSQL and FerretDB is not running, and wait until all serve."""
        self._infra("start")

    def stop(self) -> None:
        self._infra("stop")

    def reset(self) -> None:
        """Stop everything and delete the instance's data."""
        self._infra("reset")

    def kill(self, component: str) -> None:
        """SIGKILL one of kafka, ferretdb, postgres (the postmaster and its backends) and wait until gone."""
        pid = int((self.run_dir / f"{component}.pid").read_text().strip())
        victims = [pid, *(_children(pid) if component == "postgres" else [])]
        data_dir = Path(os.readlink(f"/proc/{pid}/cwd")) if component == "postgres" else None
        for victim in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while any(_alive(v) for v in victims) and time.monotonic() < deadline:
            time.sleep(0.1)
        if data_dir is not None:
            # A killed postmaster nobody reaps stays a zombie whose pid the next start takes for a live
            # server: the lock file goes, as after a machine's crash (WAL recovery runs at the next start).
            (data_dir / "postmaster.pid").unlink(missing_ok=True)


@dataclass
class Instances:
    """Two instances of every service on one store and one set of consumer groups."""

    infra: Infra
    workdir: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    per_service: int = 2

    def __post_init__(self) -> None:
        run = uuid.uuid4().hex[:8]
        self.processes: dict[str, ServiceProcess] = {}
        for name in SERVICES:
            prefix = name.upper()
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            env.update(
                {
                    f"{prefix}_KAFKA_BOOTSTRAP_SERVERS": self.infra.kafka,
                    f"{prefix}_MONGODB_URL": self.infra.mongodb_url,
                    f"{prefix}_MONGODB_DATABASE": f"chaos_{run}_{name}",
                    f"{prefix}_KAFKA_GROUP_ID": f"chaos-{run}-{name}",
                    f"{prefix}_ENVIRONMENT": "test",
                    f"{prefix}_LOG_JSON": "true",
                    # What a crash left between a write and its publish goes out within seconds here.
                    f"{prefix}_OUTBOX_GRACE_S": "3",
                    f"{prefix}_OUTBOX_SWEEP_INTERVAL_S": "2",
                }
            )
            env.update(self.extra_env)
            for n in range(1, self.per_service + 1):
                key = f"{name}-{n}"
                self.processes[key] = ServiceProcess(name, free_port(), dict(env), self.workdir / f"{key}.log")

    def of(self, name: str) -> list[ServiceProcess]:
        return [p for key, p in self.processes.items() if key.rsplit("-", 1)[0] == name]

    def start(self) -> None:
        for process in self.processes.values():
            process.start()
        for process in self.processes.values():
            process.wait_ready(120)

    def kill(self, key: str) -> None:
        self.processes[key].stop("kill")

    def restart(self, key: str) -> None:
        self.processes[key].start()

    def stop(self) -> None:
        for process in self.processes.values():
            process.stop()

    def logs(self) -> dict[str, str]:
        return {key: p.log_path.read_text(errors="replace") for key, p in self.processes.items() if p.log_path.exists()}
