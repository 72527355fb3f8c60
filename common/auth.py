"""JWT bearer authentication: `role`, `department` and `district` claims, as FastAPI dependencies."""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.principal import Principal, Role
from common.settings import ServiceSettings


def issue_token(
    settings: ServiceSettings,
    *,
    sub: str,
    role: Role | str,
    department: str | None = None,
    district: str | None = None,
    ttl: timedelta = timedelta(hours=12),
    session: str | None = None,
    name: str | None = None,
    now: datetime | None = None,
) -> str:
    """Sign a token; `session` names the front door's sign-in session the token belongs to (claim `sid`),
    `name` the person's display name (what records and pages show beside the account id)."""
    now = now or datetime.now(UTC)
    claims = {
        "sub": sub,
        "role": str(Role(role)),
        "department": department,
        "district": district,
        "iss": settings.jwt_issuer,
        "iat": now,
        "exp": now + ttl,
    }
    if session is not None:
        claims["sid"] = session
    if name is not None:
        claims["name"] = name
    return jwt.encode(claims, settings.jwt_secret.get_secret_value(), algorithm=settings.jwt_algorithm)


def decode_token(settings: ServiceSettings, token: str) -> Principal:
    claims = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=[settings.jwt_algorithm],
        issuer=settings.jwt_issuer,
        options={"require": ["sub", "role", "exp"]},
    )
    return Principal(
        sub=claims["sub"],
        role=claims["role"],
        department=claims.get("department"),
        district=claims.get("district"),
        name=claims.get("name"),
    )


_bearer = HTTPBearer(auto_error=False)


def _unauthorized(zh: str, en: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail={"message_zh": zh, "message_en": en},
        headers={"WWW-Authenticate": "Bearer"},
    )


async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise _unauthorized("缺少登录凭证", "missing bearer token")
    try:
        return decode_token(request.app.state.settings, credentials.credentials)
    except (jwt.PyJWTError, ValueError) as exc:
        raise _unauthorized("登录凭证无效或已过期", f"invalid or expired token: {exc}") from exc


def require_roles(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits only the given roles (admin is always admitted)."""

    async def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if principal.role is not Role.ADMIN and principal.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail={
                    "message_zh": f"无权访问：需要角色 {', '.join(roles)}",
                    "message_en": f"forbidden: requires role {', '.join(roles)}",
                },
            )
        return principal

    return dependency


def main() -> None:
    """`python -m common.auth --role operator --district 500103` prints a development token."""

    class TokenSettings(ServiceSettings):
        model_config = ServiceSettings.model_config | {"env_prefix": "AUTH_"}
        service_name: str = "token"

    parser = argparse.ArgumentParser(description="Print a development JWT.")
    parser.add_argument("--role", required=True, choices=[r.value for r in Role])
    parser.add_argument("--department", default=None)
    parser.add_argument("--district", default=None)
    parser.add_argument("--sub", default=None)
    parser.add_argument("--hours", type=float, default=12)
    args = parser.parse_args()
    settings = TokenSettings()
    sub = args.sub or f"dev-{args.role}"
    print(
        issue_token(
            settings,
            sub=sub,
            role=args.role,
            department=args.department or None,
            district=args.district or None,
            ttl=timedelta(hours=args.hours),
        )
    )


if __name__ == "__main__":
    main()
