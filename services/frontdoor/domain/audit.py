"""What the audit trail records: every sign-in, failure and account change, and what changed."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Action(StrEnum):
    SIGNED_IN = "signed_in"
    SIGN_IN_FAILED = "sign_in_failed"
    SIGN_IN_LOCKED = "sign_in_locked"  # refused without looking at the password
    ACCOUNT_LOCKED = "account_locked"  # this failure earned the lock
    SIGNED_OUT = "signed_out"
    ACCOUNT_CREATED = "account_created"
    ACCOUNT_UPDATED = "account_updated"
    ACCOUNT_DISABLED = "account_disabled"
    ACCOUNT_ENABLED = "account_enabled"
    PASSWORD_RESET = "password_reset"


PROFILE_FIELDS = ("display_name", "role", "department", "district")


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """`{field: {"from": old, "to": new}}` for the profile fields that differ (never the password)."""
    return {f: {"from": before.get(f), "to": after.get(f)} for f in PROFILE_FIELDS if before.get(f) != after.get(f)}
