"""The service catalogue: every need a help request can name (codes shared by all services)."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, ConfigDict, Field


class ServiceDefinition(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    code: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    provisions: tuple[str, ...] = Field(min_length=1)
    group: str
    emergency: bool = False
    name_zh: str
    name_en: str
    description_zh: str
    description_en: str


class Catalogue(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    services: tuple[ServiceDefinition, ...]

    def by_code(self) -> dict[str, ServiceDefinition]:
        return {s.code: s for s in self.services}


@cache
def service_catalogue() -> Catalogue:
    """The catalogue shipped in `contracts/data/services.yaml`, validated."""
    text = resources.files("contracts.data").joinpath("services.yaml").read_text(encoding="utf-8")
    catalogue = Catalogue.model_validate(yaml.safe_load(text))
    codes = [s.code for s in catalogue.services]
    if len(codes) != len(set(codes)):
        raise ValueError("services.yaml: duplicate service codes")
    return catalogue


def service_codes() -> frozenset[str]:
    return frozenset(service_catalogue().by_code())
