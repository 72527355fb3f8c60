"""Settings of the notify service (environment variables prefixed `NOTIFY_`)."""

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="NOTIFY_")

    service_name: str = "notify"
    http_port: int = 8004
