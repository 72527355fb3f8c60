"""docker-compose.yml cannot run here (no engine), so its wiring is checked as data."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml

from common.settings import PRODUCTION_REQUIRED

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("hotline", "router", "relief", "notify")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_infrastructure_is_kafka_kraft_and_a_mongo_replica_set(compose: dict) -> None:
    kafka, mongo = compose["services"]["kafka"], compose["services"]["mongo"]
    assert kafka["image"].startswith("apache/kafka:")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert "--replSet" in mongo["command"]
    assert "healthcheck" in kafka and "healthcheck" in mongo


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_gets_its_required_settings_and_valid_ones_only(name: str, compose: dict, monkeypatch) -> None:
    service = compose["services"][name]
    settings_cls = importlib.import_module(f"services.{name}.settings").Settings
    prefix = settings_cls.model_config["env_prefix"]
    env = {k: str(v) for k, v in service["environment"].items()}
    for field in PRODUCTION_REQUIRED:
        assert f"{prefix}{field.upper()}" in env, f"{name} lacks {prefix}{field.upper()}"
    for key in env:
        assert key.startswith(prefix) and key[len(prefix) :].lower() in settings_cls.model_fields, f"{name}: {key}"
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = settings_cls()  # validates, including the production secret rule
    assert settings.environment == "production"
    assert f"{settings.http_port}:{settings.http_port}" in service["ports"]
    assert str(settings.http_port) in service["command"]
    assert all(dep["condition"] == "service_healthy" for dep in service["depends_on"].values())
    assert f":{settings.http_port}/readyz" in " ".join(service["healthcheck"]["test"])


def test_no_host_ports_clash(compose: dict) -> None:
    host_ports = [p.split(":")[0] for s in compose["services"].values() for p in s.get("ports", [])]
    assert len(host_ports) == len(set(host_ports)) == len(SERVICES) + 1  # and the front door's 8000


def test_the_front_door_serves_port_8000_in_front_of_the_four_healthy_services(compose: dict, monkeypatch) -> None:
    from services.frontdoor.settings import Settings

    frontdoor = compose["services"]["frontdoor"]
    env = {k: str(v) for k, v in frontdoor["environment"].items()}
    for key in env:
        assert key.startswith("FRONTDOOR_") and key[len("FRONTDOOR_") :].lower() in Settings.model_fields, key
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    settings = Settings()  # validates, including the production secret rule
    assert (settings.environment, settings.http_host, settings.http_port) == ("production", "0.0.0.0", 8000)
    assert "8000:8000" in frontdoor["ports"] and "8000" in frontdoor["command"]
    assert "services.frontdoor.app:create_app" in frontdoor["command"]
    assert ":8000/readyz" in " ".join(frontdoor["healthcheck"]["test"])
    assert settings.mongodb_url == compose["services"]["hotline"]["environment"]["HOTLINE_MONGODB_URL"]
    # The services' URLs, by their names on the compose network and their ports.
    for name in SERVICES:
        port = compose["services"][name]["environment"][f"{name.upper()}_HTTP_PORT"]
        assert settings.upstreams()[name] == f"http://{name}:{port}"
    # The services must verify the tokens it mints: one secret.
    for name in SERVICES:
        assert compose["services"][name]["environment"][f"{name.upper()}_JWT_SECRET"] == env["FRONTDOOR_JWT_SECRET"]
    depends = frontdoor["depends_on"]
    assert set(SERVICES) <= set(depends) and "kafka" not in depends  # the front door uses no Kafka
    assert all(dep["condition"] == "service_healthy" for dep in depends.values())


def test_production_refuses_the_development_secret(monkeypatch) -> None:
    from services.hotline.settings import Settings

    monkeypatch.setenv("HOTLINE_ENVIRONMENT", "production")
    with pytest.raises(ValueError, match="jwt_secret"):
        Settings()
