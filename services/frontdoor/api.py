"""The front door's HTTP API: signing in and out (browser cookie or API tokens), the admin's accounts
API and audit trail, and the pages. Thin: rules in domain/, the work in accounts.py."""

from __future__ import annotations

import json
from datetime import timedelta
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import HTMLResponse, RedirectResponse

from common.openapi import ErrorReply
from common.principal import Role
from services.frontdoor.accounts import SessionEnded, now_utc
from services.frontdoor.domain.accounts import after_sign_in, workspace
from services.frontdoor.schemas import (
    AccountIn,
    AccountOut,
    AccountPatch,
    AuditOut,
    Identity,
    PasswordIn,
    RefreshIn,
    SignedInOut,
    SignInIn,
    TokensOut,
)
from services.frontdoor.sessions import (
    AdminDep,
    FrontDoor,
    FrontDoorDep,
    SessionDep,
    browser_session,
    clear_cookie,
    client_of,
    identity,
    set_cookie,
)

auth = APIRouter(prefix="/auth", tags=["sign-in"])
accounts_api = APIRouter(prefix="/api/v1", tags=["accounts (admin)"])
pages = APIRouter(include_in_schema=False)
Username = Annotated[str, Path(min_length=1, max_length=64, description="user name")]
# What a sign-in or a refresh can be refused with, beside the field errors every route declares.
ENDED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorReply, "description": "The session has ended or the token is not valid / 登录已失效"}
}
SIGN_IN_REFUSED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorReply, "description": "Wrong user name or password, or a disabled account / 用户名或密码错误"},
    423: {"model": ErrorReply, "description": "The account is locked until the time given / 账户已锁定"},
}


def _static(name: str) -> str:
    return resources.files("services.frontdoor.static").joinpath(name).read_text(encoding="utf-8")


# ---- signing in and out: the browser (an HttpOnly cookie)
@auth.post(
    "/sign-in",
    response_model=SignedInOut,
    responses=SIGN_IN_REFUSED,
    summary="Sign in from the browser (sets the session cookie)",
)
async def sign_in(
    body: SignInIn,
    request: Request,
    response: Response,
    frontdoor: FrontDoorDep,
    next: Annotated[str | None, Query(max_length=200)] = None,
) -> SignedInOut:
    signed = await frontdoor.accounts.sign_in(
        body.username, body.password, client=client_of(request), channel="browser"
    )
    set_cookie(response, frontdoor, signed.refresh_token, signed.session.expires_at)
    who = identity(signed.session)
    return SignedInOut(identity=who, go_to=after_sign_in(who.role, next))


@auth.post("/sign-out", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out (ends the session)")
async def sign_out(request: Request, frontdoor: FrontDoorDep) -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    try:
        session = await browser_session(request, frontdoor)
    except SessionEnded:
        session = None
    if session is not None:
        await frontdoor.accounts.sign_out(session, client=client_of(request))
        frontdoor.forget(session.sid)
    clear_cookie(response, frontdoor)
    return response


@auth.get("/session", response_model=Identity, summary="Who is signed in")
async def current(session: SessionDep) -> Identity:
    return identity(session)


@auth.get("/session.js", include_in_schema=False)
async def session_script(request: Request, frontdoor: FrontDoorDep) -> Response:
    """The signed-in identity for a page, loaded synchronously before the page's own script."""
    try:
        session = await browser_session(request, frontdoor)
    except SessionEnded:
        session = None
    who = identity(session).model_dump(mode="json") if session else None
    script = _static("session.js").replace("__IDENTITY__", json.dumps(who, ensure_ascii=False))
    return Response(script, media_type="text/javascript", headers={"Cache-Control": "no-store"})


# ---- API clients: tokens in the body, no cookie
@auth.post(
    "/token",
    response_model=TokensOut,
    responses=SIGN_IN_REFUSED,
    summary="Sign in as an API client: access and refresh tokens",
)
async def token(body: SignInIn, request: Request, frontdoor: FrontDoorDep) -> TokensOut:
    signed = await frontdoor.accounts.sign_in(body.username, body.password, client=client_of(request), channel="api")
    access, expires_at = frontdoor.accounts.access_token(signed.session)
    return TokensOut(
        access_token=access,
        expires_at=expires_at,
        refresh_token=signed.refresh_token,
        session_expires_at=signed.session.expires_at,
    )


@auth.post("/token/refresh", response_model=TokensOut, responses=ENDED, summary="A new access token for a live session")
async def refresh(body: RefreshIn, frontdoor: FrontDoorDep) -> TokensOut:
    session = await frontdoor.accounts.session(body.refresh_token)
    access, expires_at = frontdoor.accounts.access_token(session)
    return TokensOut(access_token=access, expires_at=expires_at, session_expires_at=session.expires_at)


@auth.post("/token/revoke", status_code=status.HTTP_204_NO_CONTENT, summary="Sign an API client out")
async def revoke(body: RefreshIn, request: Request, frontdoor: FrontDoorDep) -> Response:
    try:
        session = await frontdoor.accounts.session(body.refresh_token)
    except SessionEnded:
        return Response(status_code=status.HTTP_204_NO_CONTENT)  # already over: nothing to end
    await frontdoor.accounts.sign_out(session, client=client_of(request))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# ---- the admin's accounts API
async def _out(frontdoor: FrontDoor, account: dict[str, Any]) -> AccountOut:
    return AccountOut.of(account, locked_until=await frontdoor.accounts.lock_state(account["_id"]))


@accounts_api.get("/accounts", response_model=list[AccountOut], summary="Every account")
async def list_accounts(admin: AdminDep, frontdoor: FrontDoorDep) -> list[AccountOut]:
    docs = await frontdoor.accounts.store.list_accounts()
    return [await _out(frontdoor, d) for d in docs]


@accounts_api.post(
    "/accounts", response_model=AccountOut, status_code=status.HTTP_201_CREATED, summary="Create an account"
)
async def create_account(body: AccountIn, admin: AdminDep, request: Request, frontdoor: FrontDoorDep) -> AccountOut:
    doc = await frontdoor.accounts.create(actor=admin.username, client=client_of(request), **body.model_dump())
    return await _out(frontdoor, doc)


@accounts_api.get("/accounts/{username}", response_model=AccountOut, summary="One account")
async def get_account(username: Username, admin: AdminDep, frontdoor: FrontDoorDep) -> AccountOut:
    return await _out(frontdoor, await frontdoor.accounts.get(username))


@accounts_api.patch(
    "/accounts/{username}", response_model=AccountOut, summary="Change display name, role, department or district"
)
async def update_account(
    username: Username, body: AccountPatch, admin: AdminDep, request: Request, frontdoor: FrontDoorDep
) -> AccountOut:
    doc = await frontdoor.accounts.update(
        username, actor=admin.username, client=client_of(request), **body.model_dump(exclude_unset=True)
    )
    return await _out(frontdoor, doc)


@accounts_api.post(
    "/accounts/{username}/disable",
    response_model=AccountOut,
    summary="Disable: the person's sessions end at once and cannot be refreshed",
)
async def disable_account(username: Username, admin: AdminDep, request: Request, frontdoor: FrontDoorDep) -> AccountOut:
    doc = await frontdoor.accounts.set_disabled(username, True, actor=admin.username, client=client_of(request))
    return await _out(frontdoor, doc)


@accounts_api.post("/accounts/{username}/enable", response_model=AccountOut, summary="Re-enable")
async def enable_account(username: Username, admin: AdminDep, request: Request, frontdoor: FrontDoorDep) -> AccountOut:
    doc = await frontdoor.accounts.set_disabled(username, False, actor=admin.username, client=client_of(request))
    return await _out(frontdoor, doc)


@accounts_api.post(
    "/accounts/{username}/password",
    response_model=AccountOut,
    summary="Reset the password (lifts a lock, ends the account's sessions)",
)
async def reset_password(
    username: Username, body: PasswordIn, admin: AdminDep, request: Request, frontdoor: FrontDoorDep
) -> AccountOut:
    doc = await frontdoor.accounts.reset_password(
        username, body.password, actor=admin.username, client=client_of(request)
    )
    return await _out(frontdoor, doc)


@accounts_api.get("/audit", response_model=list[AuditOut], summary="The audit trail, newest first")
async def audit(
    admin: AdminDep,
    frontdoor: FrontDoorDep,
    account: Annotated[str | None, Query(max_length=64, description="one account's entries")] = None,
    days: Annotated[float, Query(gt=0, le=366, description="how far back")] = 7,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[AuditOut]:
    docs = await frontdoor.accounts.store.audit_entries(
        account=account.strip().lower() if account else None, limit=limit, since=now_utc() - timedelta(days=days)
    )
    return [AuditOut(**d) for d in docs]


# ---- pages
@pages.get("/", response_class=HTMLResponse)
async def sign_in_page(
    request: Request, frontdoor: FrontDoorDep, next: Annotated[str | None, Query(max_length=200)] = None
) -> Response:
    """The sign-in page; someone already signed in goes straight to their workspace."""
    try:
        session = await browser_session(request, frontdoor)
    except SessionEnded:
        session = None
    if session is not None:
        return RedirectResponse(after_sign_in(session.account["role"], next), status_code=303)
    return HTMLResponse(_static("index.html"), headers={"Cache-Control": "no-store"})


@pages.get("/accounts")
async def accounts_redirect() -> RedirectResponse:
    return RedirectResponse("/accounts/", status_code=308)


@pages.get("/accounts/", response_class=HTMLResponse)
async def accounts_page(request: Request, frontdoor: FrontDoorDep) -> Response:
    try:
        session = await browser_session(request, frontdoor)
    except SessionEnded:
        session = None
    if session is None:
        return RedirectResponse("/?next=/accounts/", status_code=303)
    if session.account["role"] != Role.ADMIN:
        return RedirectResponse(workspace(session.account["role"]), status_code=303)
    return HTMLResponse(_static("accounts.html"), headers={"Cache-Control": "no-store"})
