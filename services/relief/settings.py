"""Settings of the relief service (environment variables prefixed `RELIEF_`)."""

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="RELIEF_")

    service_name: str = "relief"
    http_port: int = 8003
