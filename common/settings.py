"""The settings base every service's `Settings` derives from (one env prefix per service)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Common settings. A subclass sets `env_prefix`, e.g. `HOTLINE_` gives `HOTLINE_KAFKA_BOOTSTRAP_SERVERS`."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    service_name: str
    environment: Literal["development", "test", "production"] = "development"
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    mongodb_url: str = "mongodb://127.0.0.1:27017/"
    mongodb_database: str = ""
    mongodb_timeout_ms: int = Field(default=5000, ge=100)
    jwt_secret: SecretStr = SecretStr("dev-only-secret-change-me-in-production-0123456789")
    jwt_algorithm: str = "HS256"
    jwt_issuer: str = "relief-hotline"
    log_level: str = "INFO"
    log_json: bool | None = None  # None: JSON when stdout is not a terminal
    # Consumer policy (ARCHITECTURE.md "Delivery rules"): retries with backoff, then `<topic>.dlq`.
    consumer_max_attempts: int = Field(default=4, ge=1)
    consumer_backoff_initial_s: float = Field(default=0.2, ge=0)
    consumer_backoff_max_s: float = Field(default=5.0, ge=0)

    @property
    def database_name(self) -> str:
        return self.mongodb_database or self.service_name

    @property
    def consumer_group(self) -> str:
        return self.service_name
