"""Token and session lifetimes: short access tokens, a refreshable sign-in session that ends."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

# Mint a fresh access token this long before the old one expires, so a request in flight never
# reaches a service with a token that has just run out.
RENEW_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Lifetimes:
    access: timedelta = timedelta(minutes=15)
    session: timedelta = timedelta(hours=12)

    def access_expires_at(self, *, now: datetime, session_expires_at: datetime) -> datetime:
        """An access token never outlives the session it was minted for."""
        return min(now + self.access, session_expires_at)

    def session_expires_at(self, *, signed_in_at: datetime) -> datetime:
        return signed_in_at + self.session


@dataclass(frozen=True)
class SessionState:
    """What the store knows of one sign-in session and its account."""

    expires_at: datetime
    revoked_at: datetime | None
    account_disabled: bool


def refusal(state: SessionState | None, *, now: datetime) -> tuple[str, str] | None:
    """Why a session may no longer refresh or be used (zh, en), or None when it may."""
    if state is None:
        return "登录已失效，请重新登录", "the session is unknown; sign in again"
    if state.account_disabled:
        return "账户已停用", "the account is disabled"
    if state.revoked_at is not None:
        return "已退出登录，请重新登录", "the session was signed out; sign in again"
    if now >= state.expires_at:
        return "登录已过期，请重新登录", "the session has expired; sign in again"
    return None


def needs_renewal(expires_at: datetime | None, *, now: datetime) -> bool:
    """Whether a cached access token is too close to its end to forward."""
    return expires_at is None or now >= expires_at - RENEW_MARGIN
