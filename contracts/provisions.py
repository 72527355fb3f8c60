"""The notice's provisions and their scope marks (`contracts/data/provisions.yaml`), validated: the ids every
rule and test cites (POLICY.md)."""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["core", "route", "ops"]
PROVISION_PATTERN = r"^P\d\.\d[a-d]?$"


class Provision(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=PROVISION_PATTERN)
    scope: Scope
    title_zh: str
    title_en: str


class Register(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: int
    provisions: tuple[Provision, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Register:
        ids = [p.id for p in self.provisions]
        if len(ids) != len(set(ids)):
            raise ValueError("provisions.yaml: a provision id appears twice")
        return self

    def by_id(self) -> dict[str, Provision]:
        return {p.id: p for p in self.provisions}


@cache
def provisions() -> Register:
    """The register shipped in `contracts/data/provisions.yaml`."""
    text = resources.files("contracts.data").joinpath("provisions.yaml").read_text(encoding="utf-8")
    return Register.model_validate(yaml.safe_load(text))
