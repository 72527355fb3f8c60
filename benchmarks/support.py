"""What every benchmark shares: where the real Kafka and store are."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class BenchSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    infra_instance: str = "run"  # deploy/local/infra.sh's INFRA_INSTANCE: where its pid files are
