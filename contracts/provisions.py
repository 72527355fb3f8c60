"""The notice's provisions and their scope marks (`contracts/data/provisions.yaml`), validated: the ids every
rule and test cites (POLICY.md)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Scope = Literal["core", "route", "ops"]
PROVISION_PATTERN = r"^P\d\.\d[a-d]?$"


def _provision_ids(value: tuple[str, ...]) -> tuple[str, ...]:
    bad = [p for p in value if not re.match(PROVISION_PATTERN, p)]
    if bad:
        raise ValueError(f"条款编号格式不正确 {bad} | provision ids look like P2.3: {bad}")
    return value


# The provisions a rule cites (rule data of every service): ids of POLICY.md's form, e.g. P2.3 or P5.2b.
ProvisionIds = Annotated[tuple[str, ...], AfterValidator(_provision_ids), Field(min_length=1)]


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
