"""Settings of the notify service (environment variables prefixed `NOTIFY_`)."""

from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="NOTIFY_")

    service_name: str = "notify"
    http_port: int = 8004

    # Where a consumer group that has no committed offset yet starts reading (a first deployment reads
    # the whole history; "latest" suits throw-away test instances on shared topics).
    kafka_start_from: Literal["earliest", "latest"] = "earliest"
    # Case events are consumed this many records at a time at most (one write-path pass per batch).
    case_batch_size: int = Field(default=500, ge=1, le=5000)

    # SLA policy file (YAML, see services/notify/data/sla_policy.yaml); empty = the packaged one.
    sla_policy_path: str = ""
    # Overrides the policy's warning share (default 0.75: warn when 75% of a target's time is used).
    warning_share: float | None = Field(default=None, gt=0, lt=1)

    # Durable timers: how often the sweeper looks, how many it fires per look, bucket width.
    sweep_interval_s: float = Field(default=1.0, gt=0)
    sweep_batch: int = Field(default=200, ge=1)
    timer_bucket_s: int = Field(default=300, ge=1)

    # Channels: an SMS gateway over HTTP for caller texts, a webhook for department and coordinator
    # alerts; when a URL is empty that kind of message goes to the log channel.
    sms_gateway_url: str = ""
    sms_gateway_token: SecretStr = SecretStr("")
    alert_webhook_url: str = ""
    caller_texts: bool = True
    delivery_timeout_s: float = Field(default=5.0, gt=0)
    delivery_max_attempts: int = Field(default=6, ge=1)
    delivery_backoff_initial_s: float = Field(default=2.0, ge=0)
    delivery_backoff_max_s: float = Field(default=300.0, ge=0)

    # Coordinator views: the default horizon of "at risk".
    at_risk_hours: float = Field(default=4.0, gt=0)
