"""Settings of the router service (environment variables prefixed `ROUTER_`)."""

from pydantic_settings import SettingsConfigDict

from common.settings import ServiceSettings


class Settings(ServiceSettings):
    model_config = ServiceSettings.model_config | SettingsConfigDict(env_prefix="ROUTER_")

    service_name: str = "router"
    http_port: int = 8002
