"""Settings of the hotline service (environment variables prefixed `HOTLINE_`)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings

DEV_OPEN311_KEY = "dev-open311-key"  # accepted in development only
DEV_LOOKUP_PEPPER = "dev-only-lookup-pepper-change-me"


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="HOTLINE_")

    service_name: str = "hotline"
    http_port: int = 8001
    # Open311 clients: api_key -> client name, e.g. HOTLINE_OPEN311_API_KEYS='{"k3y...": "city-app"}'.
    open311_api_keys: dict[str, str] = Field(default_factory=dict)
    # Secret mixed into the hashes of phone / ID-card / household lookup keys.
    lookup_pepper: SecretStr = SecretStr(DEV_LOOKUP_PEPPER)
    # Intake publishing: wait this long for Kafka's ack before leaving the call to the outbox relay.
    publish_timeout_s: float = Field(default=3.0, gt=0)
    relay_interval_s: float = Field(default=1.0, gt=0)
    relay_batch: int = Field(default=200, ge=1)
    relay_backoff_max_s: float = Field(default=5.0, gt=0)
    # An entry claimed by a direct publish that neither succeeded nor failed by then (the process died)
    # is taken over by the relay.
    inflight_takeover_s: float = Field(default=30.0, gt=0)
    # Downstream events (router, relief, notify) projected into the caller-facing status per batch.
    status_batch_size: int = Field(default=500, ge=1, le=5000)
    # Calls being taken at the same time; more wait their turn in memory. The calls in progress share
    # their inserts (group commit), so more of them means fewer, larger store commands.
    intake_concurrency: int = Field(default=64, ge=1)
    # Every intake POST answers within this bound: accepted with a case number, or 503 with Retry-After and
    # nothing of the call stored (P6.2: an operator is never told "failed" for a call that was kept).
    accept_timeout_s: float = Field(default=2.0, gt=0, le=30)
    # H-CALLBACK-DUE (P6.2, 办结回访): a resolved case's caller is called back within this many hours.
    callback_due_hours: float = Field(default=72.0, gt=0, le=24 * 60)

    @model_validator(mode="after")
    def _production_needs_own_pepper(self) -> Settings:
        if self.environment == "production" and self.lookup_pepper.get_secret_value() == DEV_LOOKUP_PEPPER:
            raise ValueError("lookup_pepper: production needs its own secret, not the development default")
        return self

    def open311_client(self, api_key: str | None) -> str | None:
        """The client name an Open311 api_key belongs to; the dev key only in development."""
        if not api_key:
            return None
        if api_key in self.open311_api_keys:
            return self.open311_api_keys[api_key]
        if self.environment == "development" and api_key == DEV_OPEN311_KEY:
            return "dev"
        return None
