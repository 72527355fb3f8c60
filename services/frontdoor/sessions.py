"""Who is asking: the browser's session cookie or an API client's bearer token, resolved to a live
session; and the short-lived access tokens the front door forwards on a browser's behalf.

The browser holds one HttpOnly, SameSite=Strict cookie: its session's refresh token. Page scripts
never see a token, so a script injected into a page cannot carry one away, and other sites cannot
make the browser send the cookie. The front door checks the session on every request (signed out,
revoked, expired, account disabled: refused at once) and forwards the request with an access token it
minted for that session, kept in memory until shortly before it expires."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import httpx
import jwt
from fastapi import Depends, Request, Response

from common.app import Runtime, get_runtime
from common.auth import authenticates
from common.errors import Forbidden
from common.principal import Role
from services.frontdoor.accounts import Accounts, Session, SessionEnded, now_utc
from services.frontdoor.domain.accounts import WORKSPACES
from services.frontdoor.domain.tokens import needs_renewal
from services.frontdoor.schemas import Identity
from services.frontdoor.settings import Settings

COOKIE = "fd_session"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class FrontDoor:
    """What the running front door holds: accounts, the proxy's HTTP client, minted access tokens."""

    settings: Settings
    accounts: Accounts
    http: httpx.AsyncClient
    tokens: dict[str, tuple[str, datetime, tuple[Any, ...]]] = field(default_factory=dict)

    def forwarded_token(self, session: Session) -> str:
        """The access token for this session's requests: minted anew near expiry or when the account's
        role, department or district changed."""
        a = session.account
        claims = (a["role"], a.get("department"), a.get("district"))
        now = now_utc()
        cached = self.tokens.get(session.sid)
        if cached is None or cached[2] != claims or needs_renewal(cached[1], now=now):
            if len(self.tokens) > 10_000:  # sessions that ended without a sign-out
                self.tokens = {k: v for k, v in self.tokens.items() if v[1] > now}
            token, expires_at = self.accounts.access_token(session, now=now)
            cached = self.tokens[session.sid] = (token, expires_at, claims)
        return cached[0]

    def forget(self, sid: str) -> None:
        self.tokens.pop(sid, None)


async def get_frontdoor(request: Request) -> FrontDoor:
    runtime: Runtime[FrontDoor] = await get_runtime(request)
    return runtime.service


FrontDoorDep = Annotated[FrontDoor, Depends(get_frontdoor)]


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def identity(session: Session) -> Identity:
    a = session.account
    pages = list(WORKSPACES[Role(a["role"])])
    return Identity(
        username=a["_id"],
        display_name=a.get("display_name") or a["_id"],
        role=a["role"],
        department=a.get("department"),
        district=a.get("district"),
        workspace=pages[0],
        pages=pages,
        session_expires_at=session.expires_at,
    )


def set_cookie(response: Response, frontdoor: FrontDoor, refresh_token: str, expires_at: datetime) -> None:
    response.set_cookie(
        COOKIE,
        refresh_token,
        max_age=max(1, int((expires_at - now_utc()).total_seconds())),
        path="/",
        httponly=True,
        samesite="strict",
        secure=frontdoor.settings.secure_cookies,
    )


def clear_cookie(response: Response, frontdoor: FrontDoor) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=frontdoor.settings.secure_cookies)


def same_origin(request: Request) -> bool:
    """Cookie-borne writes must come from the front door's own pages (ports do not separate sites)."""
    origin = request.headers.get("origin")
    return origin is None or origin == f"{request.url.scheme}://{request.headers.get('host', '')}"


async def browser_session(request: Request, frontdoor: FrontDoor) -> Session | None:
    """The session of the request's cookie; None without one; `SessionEnded` when it has ended."""
    if not (cookie := request.cookies.get(COOKIE)):
        return None
    return await frontdoor.accounts.session(cookie)


async def bearer_session(request: Request, frontdoor: FrontDoor) -> Session | None:
    """The session an API client's access token was minted for (a token without one is not ours)."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    s = frontdoor.settings
    try:
        claims = jwt.decode(
            token,
            s.jwt_secret.get_secret_value(),
            algorithms=[s.jwt_algorithm],
            issuer=s.jwt_issuer,
            options={"require": ["sub", "exp", "sid"]},
        )
    except jwt.PyJWTError as exc:
        raise SessionEnded("登录凭证无效或已过期", f"invalid or expired token: {exc}") from exc
    return await frontdoor.accounts.session(sid=str(claims["sid"]))


@authenticates
async def current_session(request: Request, frontdoor: FrontDoorDep) -> Session:
    session = await browser_session(request, frontdoor)
    if session is not None and request.method in UNSAFE and not same_origin(request):
        raise Forbidden("请从本系统页面操作", "cross-origin request refused")
    session = session or await bearer_session(request, frontdoor)
    if session is None:
        raise SessionEnded("请先登录", "sign in first")
    return session


async def admin_session(session: Annotated[Session, Depends(current_session)]) -> Session:
    if session.account["role"] != Role.ADMIN:
        raise Forbidden("仅管理员可管理账户", "only an admin manages accounts")
    return session


SessionDep = Annotated[Session, Depends(current_session)]
AdminDep = Annotated[Session, Depends(admin_session)]
