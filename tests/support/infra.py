"""Where the tests find the real Kafka and MongoDB-compatible store.

Environment variables first (`make test` sets them after starting Kafka and FerretDB); else, where a
Docker engine answers, testcontainers starts them; else the test fails loudly. Never a skip.
"""

from __future__ import annotations

import shutil
import subprocess

from pydantic_settings import BaseSettings, SettingsConfigDict


class TestInfraSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str | None = None
    mongodb_url: str | None = None
    ci: bool = False


def docker_engine_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


HOW_TO = (
    "Kafka and the MongoDB-compatible store are required: run the suite with `make test`, which starts "
    "them, or set KAFKA_BOOTSTRAP_SERVERS and MONGODB_URL."
)
