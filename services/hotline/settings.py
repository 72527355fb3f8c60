"""Settings of the hotline service (environment variables prefixed `HOTLINE_`)."""

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="HOTLINE_")

    service_name: str = "hotline"
    http_port: int = 8001
