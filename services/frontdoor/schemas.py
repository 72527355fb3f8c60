"""What the front door's API accepts and answers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from common.principal import Role


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignInIn(Body):
    username: str = Field(min_length=1, max_length=64, description="user name (case-insensitive)")
    password: str = Field(min_length=1, max_length=256)


class RefreshIn(Body):
    refresh_token: str = Field(min_length=10, max_length=200)


class Identity(BaseModel):
    """Who is signed in: what the pages show and use to pick their lists (never the token itself)."""

    username: str
    display_name: str
    role: Role
    department: str | None
    district: str | None
    workspace: str
    pages: list[str]
    session_expires_at: datetime


class SignedInOut(BaseModel):
    identity: Identity
    go_to: str = Field(description="the page to open now")


class TokensOut(BaseModel):
    token_type: str = "Bearer"
    access_token: str
    expires_at: datetime
    refresh_token: str | None = Field(default=None, description="only when signing in")
    session_expires_at: datetime


class AccountIn(Body):
    username: str = Field(min_length=1, max_length=64)
    display_name: str = Field(min_length=1, max_length=60)
    role: Role
    department: str | None = Field(default=None, max_length=40)
    district: str | None = Field(default=None, max_length=12)
    password: str = Field(min_length=1, max_length=256)


class AccountPatch(Body):
    display_name: str | None = Field(default=None, min_length=1, max_length=60)
    role: Role | None = None
    department: str | None = Field(default=None, max_length=40)
    district: str | None = Field(default=None, max_length=12)


class PasswordIn(Body):
    password: str = Field(min_length=1, max_length=256)


class AccountOut(BaseModel):
    """An account as the admin sees it: never its password hash."""

    username: str
    display_name: str
    role: Role
    department: str | None = None
    district: str | None = None
    disabled: bool
    created_at: datetime
    updated_at: datetime
    password_changed_at: datetime | None = None
    locked_until: datetime | None = None

    @classmethod
    def of(cls, account: dict[str, Any], *, locked_until: datetime | None) -> AccountOut:
        """From the stored account (keyed by user name); only the fields above are read."""
        return cls(
            username=account["_id"],
            display_name=account["display_name"],
            role=account["role"],
            department=account.get("department"),
            district=account.get("district"),
            disabled=account["disabled"],
            created_at=account["created_at"],
            updated_at=account["updated_at"],
            password_changed_at=account.get("password_changed_at"),
            locked_until=locked_until,
        )


class AuditOut(BaseModel):
    at: datetime
    action: str
    account: str | None
    actor: str | None
    client: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)
