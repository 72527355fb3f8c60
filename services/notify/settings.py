"""Settings of the notify service (environment variables prefixed `NOTIFY_`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    # Caller texts' provider (P6.2; see services/notify/sms.py): `webhook` POSTs to `sms_gateway_url`
    # (development, or any gateway speaking that JSON); `aliyun` sends through Alibaba Cloud SMS (短信服务,
    # SendSms) with a sign name and one approved template per text kind.
    sms_provider: Literal["webhook", "aliyun"] = "webhook"
    # `dysmsapi.aliyuncs.com` (https), or a full URL such as `http://127.0.0.1:9000` for a local stand-in.
    aliyun_sms_endpoint: str = "dysmsapi.aliyuncs.com"
    aliyun_sms_region: str = "cn-hangzhou"
    aliyun_sms_access_key_id: str = ""
    aliyun_sms_access_key_secret: SecretStr = SecretStr("")
    aliyun_sms_sign_name: str = ""
    aliyun_sms_template_dispatched: str = ""  # template code of the `caller_dispatched` text, e.g. SMS_123456789
    aliyun_sms_template_resolved: str = ""  # template code of the `caller_resolved` text
    delivery_timeout_s: float = Field(default=5.0, gt=0)
    delivery_max_attempts: int = Field(default=6, ge=1)
    delivery_backoff_initial_s: float = Field(default=2.0, ge=0)
    delivery_backoff_max_s: float = Field(default=300.0, ge=0)
    # How long a caller's text waits for notify to read the call it answers (its consent and phone), after
    # the dispatch that caused it: waiting is not a failed attempt. After an outage notify can be minutes
    # behind on the hotline's topic; a text given up then would be lost for good.
    delivery_call_wait_s: float = Field(default=86_400.0, gt=0)

    # Coordinator views: the default horizon of "at risk".
    at_risk_hours: float = Field(default=4.0, gt=0)

    @model_validator(mode="after")
    def _aliyun_sms_is_complete(self) -> Settings:
        """With `sms_provider=aliyun` every credential, the sign name and both templates are required: the
        service refuses to start rather than fail every text."""
        if self.sms_provider == "aliyun":
            missing = [
                f"NOTIFY_{name.upper()}"
                for name in (
                    "aliyun_sms_access_key_id",
                    "aliyun_sms_sign_name",
                    "aliyun_sms_template_dispatched",
                    "aliyun_sms_template_resolved",
                )
                if not getattr(self, name)
            ]
            if not self.aliyun_sms_access_key_secret.get_secret_value():
                missing.append("NOTIFY_ALIYUN_SMS_ACCESS_KEY_SECRET")
            if missing:
                raise ValueError(f"NOTIFY_SMS_PROVIDER=aliyun needs {', '.join(missing)}")
        return self
