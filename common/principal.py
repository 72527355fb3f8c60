"""Who is asking: the roles and the authenticated principal, as plain data (no web or token code)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

CITY = "city"  # the district claim of a city-level user


class Role(StrEnum):
    OPERATOR = "operator"
    DEPT_WORKER = "dept_worker"
    RELIEF_OFFICER = "relief_officer"
    COORDINATOR = "coordinator"
    ADMIN = "admin"


class Principal(BaseModel):
    """The authenticated user, from the token's claims."""

    model_config = ConfigDict(frozen=True)

    sub: str
    role: Role
    department: str | None = None
    district: str | None = None
    name: str | None = None  # display name, when the token carries one (the front door's do)

    @property
    def city_level(self) -> bool:
        return self.district in (None, CITY) or self.role is Role.ADMIN

    @property
    def shown_as(self) -> str:
        """How a record names this person: the display name with the account id, or the id alone."""
        return f"{self.name}（{self.sub}）" if self.name else self.sub

    def can_see_district(self, district: str) -> bool:
        return self.city_level or self.district == district
