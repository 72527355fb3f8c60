"""Settings of the front door (environment variables prefixed `FRONTDOOR_`)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="FRONTDOOR_")

    service_name: str = "frontdoor"
    http_port: int = 8000
    # Where the pages' APIs live; the front door forwards /<service>/... there.
    hotline_url: str = "http://127.0.0.1:8001"
    router_url: str = "http://127.0.0.1:8002"
    relief_url: str = "http://127.0.0.1:8003"
    notify_url: str = "http://127.0.0.1:8004"
    proxy_timeout_s: float = Field(default=60.0, gt=0)
    # Access tokens are what the services verify; they cannot be recalled, so they stay short.
    access_token_ttl_s: float = Field(default=900.0, ge=30, le=3600)
    # A sign-in lasts at most this long (a shift), then the person signs in again.
    session_ttl_s: float = Field(default=12 * 3600.0, ge=60)
    lockout_max_failures: int = Field(default=5, ge=1)
    lockout_window_s: float = Field(default=900.0, gt=0)
    lockout_s: float = Field(default=900.0, gt=0)
    password_min_length: int = Field(default=10, ge=8)
    # None: Secure cookies in production only (development runs on plain http://127.0.0.1).
    cookie_secure: bool | None = None
    # `make run` on a developer's machine: one account per role when there are none (development only).
    dev_accounts: bool = True
    # Sign-in attempts older than this are deleted (they only matter to the lockout).
    attempts_retention_s: float = Field(default=86_400.0, ge=3600)
    prune_interval_s: float = Field(default=3_600.0, gt=0)

    def upstreams(self) -> dict[str, str]:
        """Service name -> base URL of the services whose pages the front door serves."""
        return {
            "hotline": self.hotline_url,
            "router": self.router_url,
            "relief": self.relief_url,
            "notify": self.notify_url,
        }

    @property
    def secure_cookies(self) -> bool:
        return self.environment == "production" if self.cookie_secure is None else self.cookie_secure
