"""Signing in and out, and the admin's account changes: load, decide by the domain rules, store, audit.

Passwords are hashed with argon2 in a worker thread (a hash takes tens of milliseconds of CPU, which
would stall every proxied request on the event loop) and never logged or audited."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from common.auth import issue_token
from common.errors import DomainError, Forbidden, NotFound
from common.principal import Role
from contracts.events.base import BUSINESS_TZ
from services.frontdoor.domain.accounts import Profile, check_password, check_profile, check_username
from services.frontdoor.domain.audit import Action, changes
from services.frontdoor.domain.lockout import Attempt, LockoutPolicy, is_locked
from services.frontdoor.domain.tokens import Lifetimes, SessionState, refusal
from services.frontdoor.settings import Settings
from services.frontdoor.store import Doc, FrontdoorStore, digest

log = structlog.get_logger("frontdoor.accounts")


class SignInRefused(DomainError):
    status = 401
    code = "sign_in_refused"


class AccountLocked(DomainError):
    status = 423
    code = "account_locked"


class SessionEnded(DomainError):
    status = 401
    code = "session_ended"


@dataclass(frozen=True)
class Session:
    """A live sign-in: its id, the account behind it and when it ends."""

    sid: str
    account: Doc
    expires_at: datetime

    @property
    def username(self) -> str:
        return self.account["_id"]


@dataclass(frozen=True)
class SignedIn:
    session: Session
    refresh_token: str  # `<sid>.<secret>`: the browser's cookie, or an API client's refresh token


def now_utc() -> datetime:
    return datetime.now(UTC)


class Accounts:
    def __init__(self, store: FrontdoorStore, settings: Settings, *, hasher: PasswordHasher | None = None) -> None:
        self.store = store
        self.settings = settings
        self.hasher = hasher or PasswordHasher()
        self.policy = LockoutPolicy(
            max_failures=settings.lockout_max_failures,
            window=timedelta(seconds=settings.lockout_window_s),
            lockout=timedelta(seconds=settings.lockout_s),
        )
        self.lifetimes = Lifetimes(
            access=timedelta(seconds=settings.access_token_ttl_s), session=timedelta(seconds=settings.session_ttl_s)
        )
        self._dummy_hash: str | None = None

    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    # ---- signing in and out
    async def sign_in(self, username: str, password: str, *, client: str | None, channel: str) -> SignedIn:
        """Check the password (unless the account is locked), record the attempt, open a session."""
        now = now_utc()
        name = username.strip().lower()
        account = await self.store.account(name)
        refused = SignInRefused("用户名或密码错误", "wrong user name or password")
        if account is None:
            # The same work as a real check, so the answer's timing does not tell which names exist.
            self._dummy_hash = self._dummy_hash or await self._hash(secrets.token_hex(16))
            await self._verify(self._dummy_hash, password)
            await self.store.audit(
                Action.SIGN_IN_FAILED,
                at=now,
                account=name,
                actor=name,
                client=client,
                details={"reason": "unknown_account", "channel": channel},
            )
            raise refused
        attempts = await self.store.attempts_since(name, now - self.policy.lookback)
        if until := is_locked(attempts, self.policy, now=now, reset_at=account.get("failures_reset_at")):
            await self.store.audit(
                Action.SIGN_IN_LOCKED,
                at=now,
                account=name,
                actor=name,
                client=client,
                details={"locked_until": until, "channel": channel},
            )
            raise self._locked(until)
        if not await self._verify(account["password_hash"], password):
            await self.store.record_attempt(name, at=now, ok=False)
            await self.store.audit(
                Action.SIGN_IN_FAILED,
                at=now,
                account=name,
                actor=name,
                client=client,
                details={"reason": "wrong_password", "channel": channel},
            )
            attempts.append(Attempt(at=now, ok=False))
            if until := is_locked(attempts, self.policy, now=now, reset_at=account.get("failures_reset_at")):
                await self.store.audit(
                    Action.ACCOUNT_LOCKED,
                    at=now,
                    account=name,
                    actor=name,
                    client=client,
                    details={"locked_until": until},
                )
                log.warning("account locked after failed sign-ins", account=name, locked_until=until.isoformat())
                raise self._locked(until)
            raise refused
        if account.get("disabled"):
            await self.store.audit(
                Action.SIGN_IN_FAILED,
                at=now,
                account=name,
                actor=name,
                client=client,
                details={"reason": "disabled", "channel": channel},
            )
            raise SignInRefused("账户已停用，请联系管理员", "the account is disabled; ask an administrator")
        await self.store.record_attempt(name, at=now, ok=True)
        sid, secret = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        expires_at = self.lifetimes.session_expires_at(signed_in_at=now)
        await self.store.open_session(
            sid=sid, secret=secret, account=name, at=now, expires_at=expires_at, channel=channel
        )
        await self.store.audit(
            Action.SIGNED_IN,
            at=now,
            account=name,
            actor=name,
            client=client,
            details={"session": sid, "channel": channel},
        )
        log.info("signed in", account=name, role=account["role"], channel=channel)
        return SignedIn(Session(sid, account, expires_at), f"{sid}.{secret}")

    @staticmethod
    def _locked(until: datetime) -> AccountLocked:
        local = until.astimezone(BUSINESS_TZ).strftime("%H:%M")
        return AccountLocked(
            f"登录失败次数过多，账户已锁定，请于 {local} 后再试",
            f"too many failed sign-ins: the account is locked until {local} (Chongqing time)",
        )

    async def session(self, refresh_token: str | None = None, *, sid: str | None = None) -> Session:
        """The live session a refresh token (or, for a verified access token, a session id) belongs to;
        `SessionEnded` once it was signed out, revoked, expired, or its account disabled."""
        secret = None
        if refresh_token is not None:
            sid, _, secret = refresh_token.partition(".")
        doc = await self.store.session(sid) if sid else None
        if doc is not None and secret is not None and not secrets.compare_digest(doc["secret_hash"], digest(secret)):
            doc = None
        account = await self.store.account(doc["account"]) if doc else None
        state = (
            None
            if doc is None or account is None
            else SessionState(
                expires_at=doc["expires_at"],
                revoked_at=doc.get("revoked_at"),
                account_disabled=bool(account.get("disabled")),
            )
        )
        if reason := refusal(state, now=now_utc()):
            raise SessionEnded(*reason)
        assert doc is not None and account is not None
        return Session(doc["_id"], account, doc["expires_at"])

    def access_token(self, session: Session, *, now: datetime | None = None) -> tuple[str, datetime]:
        """A short-lived token with the account's current claims, as the services verify it."""
        now = now or now_utc()
        expires_at = self.lifetimes.access_expires_at(now=now, session_expires_at=session.expires_at)
        a = session.account
        token = issue_token(
            self.settings,
            sub=a["_id"],
            role=a["role"],
            department=a.get("department"),
            district=a.get("district"),
            ttl=expires_at - now,
            session=session.sid,
            name=a.get("display_name"),
            now=now,
        )
        return token, expires_at

    async def sign_out(self, session: Session, *, client: str | None) -> None:
        now = now_utc()
        await self.store.revoke_session(session.sid, at=now)
        await self.store.audit(
            Action.SIGNED_OUT,
            at=now,
            account=session.username,
            actor=session.username,
            client=client,
            details={"session": session.sid},
        )

    # ---- the admin's changes
    async def get(self, username: str) -> Doc:
        if (doc := await self.store.account(username.strip().lower())) is None:
            raise NotFound("账户不存在", f"no account {username!r}", field="username")
        return doc

    async def create(
        self,
        *,
        actor: str,
        username: str,
        password: str,
        display_name: str,
        role: Role | str,
        department: str | None = None,
        district: str | None = None,
        client: str | None = None,
    ) -> Doc:
        name = check_username(username)
        profile = check_profile(role, department, district)
        check_password(password, min_length=self.settings.password_min_length, username=name)
        now = now_utc()
        doc = {
            "_id": name,
            "display_name": display_name.strip(),
            **_profile(profile),
            "password_hash": await self._hash(password),
            "disabled": False,
            "created_at": now,
            "updated_at": now,
            "password_changed_at": now,
            "failures_reset_at": None,
        }
        if not await self.store.create_account(doc):
            raise DomainError("用户名已被使用", f"the user name {name!r} is taken", field="username")
        await self.store.audit(
            Action.ACCOUNT_CREATED, at=now, account=name, actor=actor, client=client, details=changes({}, doc)
        )
        return doc

    async def update(self, username: str, *, actor: str, client: str | None = None, **fields: Any) -> Doc:
        """Change the display name, role, department or district (fields not given stay as they are)."""
        before = await self.get(username)
        merged: dict[str, Any] = {k: before.get(k) for k in ("role", "department", "district")} | {
            k: v for k, v in fields.items() if k in ("role", "department", "district")
        }
        profile = check_profile(merged["role"], merged["department"], merged["district"])
        update = _profile(profile) | {"updated_at": now_utc()}
        if fields.get("display_name") is not None:
            update["display_name"] = fields["display_name"].strip()
        if before["_id"] == actor and profile.role is not Role.ADMIN:
            raise Forbidden("不能取消自己的管理员角色", "you cannot take the admin role from yourself", field="role")
        after = await self.store.update_account(before["_id"], update)
        assert after is not None
        if diff := changes(before, after):
            await self.store.audit(
                Action.ACCOUNT_UPDATED,
                at=update["updated_at"],
                account=before["_id"],
                actor=actor,
                client=client,
                details=diff,
            )
        return after

    async def set_disabled(self, username: str, disabled: bool, *, actor: str, client: str | None = None) -> Doc:
        """Disable (every session of the account ends at once) or re-enable (the failure count starts afresh)."""
        before = await self.get(username)
        if disabled and before["_id"] == actor:
            raise Forbidden("不能停用自己的账户", "you cannot disable your own account", field="username")
        now = now_utc()
        fields: Doc = {"disabled": disabled, "updated_at": now}
        if not disabled:
            fields["failures_reset_at"] = now
        after = await self.store.update_account(before["_id"], fields)
        revoked = await self.store.revoke_sessions_of(before["_id"], at=now) if disabled else 0
        await self.store.audit(
            Action.ACCOUNT_DISABLED if disabled else Action.ACCOUNT_ENABLED,
            at=now,
            account=before["_id"],
            actor=actor,
            client=client,
            details={"sessions_revoked": revoked} if disabled else {},
        )
        assert after is not None
        return after

    async def reset_password(self, username: str, password: str, *, actor: str, client: str | None = None) -> Doc:
        """A new password: it also lifts a lock, and ends the account's sessions."""
        before = await self.get(username)
        check_password(password, min_length=self.settings.password_min_length, username=before["_id"])
        now = now_utc()
        after = await self.store.update_account(
            before["_id"],
            {
                "password_hash": await self._hash(password),
                "password_changed_at": now,
                "failures_reset_at": now,
                "updated_at": now,
            },
        )
        revoked = await self.store.revoke_sessions_of(before["_id"], at=now)
        await self.store.audit(
            Action.PASSWORD_RESET,
            at=now,
            account=before["_id"],
            actor=actor,
            client=client,
            details={"sessions_revoked": revoked},
        )
        assert after is not None
        return after

    async def lock_state(self, username: str) -> datetime | None:
        account = await self.get(username)
        now = now_utc()
        attempts = await self.store.attempts_since(account["_id"], now - self.policy.lookback)
        return is_locked(attempts, self.policy, now=now, reset_at=account.get("failures_reset_at"))


def _profile(profile: Profile) -> Doc:
    return {"role": str(profile.role), "department": profile.department, "district": profile.district}
