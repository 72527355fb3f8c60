"""JWT bearer authentication: `role`, `department` and `district` claims, as FastAPI dependencies.

Two issuers (`ServiceSettings.auth_mode`): the front door's HS256 tokens signed with the shared secret
(the default), and the city's OIDC identity provider's RS256/ES256 tokens, checked against the keys it
publishes (JWKS), its issuer and our audience, its claims mapped to ours by settings. The keys are
fetched asynchronously and cached (`JwksCache`): a request waits on the network only when the cached
set is older than `auth_oidc_jwks_cache_s` or its token names a key the set does not hold (rotation)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, TypeVar

import httpx
import jwt
import structlog
from fastapi import Depends, FastAPI, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from common.principal import Principal, Role
from common.settings import ServiceSettings

log = structlog.get_logger("auth")


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
    return _shared_secret_principal(_shared_secret_claims(settings, token))


def _shared_secret_claims(settings: ServiceSettings, token: str) -> dict[str, Any]:
    claims: dict[str, Any] = jwt.decode(
        token,
        settings.jwt_secret.get_secret_value(),
        algorithms=[settings.jwt_algorithm],
        issuer=settings.jwt_issuer,
        options={"require": ["sub", "role", "exp"]},
    )
    return claims


def _shared_secret_principal(claims: Mapping[str, Any]) -> Principal:
    return Principal(
        sub=claims["sub"],
        role=claims["role"],
        department=claims.get("department"),
        district=claims.get("district"),
        name=claims.get("name"),
    )


class KeysUnavailable(Exception):
    """The identity provider's keys could not be fetched, and none are cached: nothing can be verified."""


class JwksCache:
    """The identity provider's signing keys by `kid`, fetched with httpx (never blocking the event loop),
    kept for `auth_oidc_jwks_cache_s` and fetched again at once for an unknown `kid` (at most once per
    `auth_oidc_refetch_min_s`). Concurrent requests share one fetch. When a refetch fails the keys
    already held stay in use (logged), so a provider's outage does not sign everybody out."""

    def __init__(self, settings: ServiceSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self._transport = transport
        self._jwks_url = settings.auth_oidc_jwks_url
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._fetched_at: float | None = None  # monotonic time of the last fetch that answered
        self._tried_at: float | None = None  # of the last attempt, successful or not
        self._lock = asyncio.Lock()
        self.fetches = 0  # key sets fetched (tests and logs)

    async def key(self, kid: str | None) -> jwt.PyJWK:
        if self._needs_fetch(kid):
            async with self._lock:  # one fetch for every request waiting on it
                if self._needs_fetch(kid):
                    await self._refresh()
        if not self._keys:
            raise KeysUnavailable(f"no keys of {self.settings.auth_oidc_issuer} fetched yet")
        if kid is None and len(self._keys) == 1:  # a provider with one key may leave `kid` out
            return next(iter(self._keys.values()))
        if (found := self._keys.get(kid)) is None:
            raise jwt.InvalidKeyError(f"no key {kid!r} in the key set of {self.settings.auth_oidc_issuer}")
        return found

    def _needs_fetch(self, kid: str | None) -> bool:
        now = time.monotonic()
        if self._tried_at is not None and now - self._tried_at < self.settings.auth_oidc_refetch_min_s:
            return False
        if self._fetched_at is None or now - self._fetched_at >= self.settings.auth_oidc_jwks_cache_s:
            return True
        return kid not in self._keys and not (kid is None and len(self._keys) == 1)

    async def _refresh(self) -> None:
        s = self.settings
        self._tried_at = time.monotonic()
        try:
            async with httpx.AsyncClient(timeout=s.auth_oidc_timeout_s, transport=self._transport) as http:
                if not self._jwks_url:
                    self._jwks_url = await _discover_jwks_url(http, s.auth_oidc_issuer)
                reply = await http.get(self._jwks_url)
                reply.raise_for_status()
                self._keys = _signing_keys(reply.json(), s.auth_oidc_algorithms)
        except (httpx.HTTPError, ValueError, KeyError, jwt.PyJWTError) as exc:
            where = self._jwks_url or s.auth_oidc_issuer
            log.warning("identity provider's keys not fetched", url=where, error=repr(exc))
            if not self._keys:
                raise KeysUnavailable(repr(exc)) from exc
            return
        self._fetched_at = time.monotonic()
        self.fetches += 1
        log.info("identity provider's keys fetched", url=self._jwks_url, keys=len(self._keys))


async def _discover_jwks_url(http: httpx.AsyncClient, issuer: str) -> str:
    """OpenID Connect discovery: the provider says where its keys are (and must name itself our issuer)."""
    reply = await http.get(f"{issuer.rstrip('/')}/.well-known/openid-configuration")
    reply.raise_for_status()
    config = reply.json()
    if config.get("issuer") != issuer:
        raise ValueError(f"the discovery document names issuer {config.get('issuer')!r}, not {issuer!r}")
    return str(config["jwks_uri"])


def _signing_keys(jwks: Mapping[str, Any], algorithms: tuple[str, ...]) -> dict[str | None, jwt.PyJWK]:
    """The set's signature keys we can use (encryption keys and unknown key types are left out)."""
    keys: dict[str | None, jwt.PyJWK] = {}
    for data in jwks["keys"]:
        if data.get("use", "sig") != "sig" or (data.get("alg") and data["alg"] not in algorithms):
            continue
        try:
            key = jwt.PyJWK(data)
        except jwt.PyJWTError as exc:
            log.info("key of the identity provider skipped", kid=data.get("kid"), error=repr(exc))
            continue
        keys[key.key_id] = key
    if not keys:
        raise ValueError("the identity provider's key set holds no usable signing key")
    return keys


def _claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name; `a.b` reads `claims["a"]["b"]` (providers nest roles, e.g. `realm_access.roles`)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def _text(claims: Mapping[str, Any], name: str) -> str | None:
    value = _claim(claims, name)
    if value is None or value == "":
        return None
    if isinstance(value, list) and len(value) == 1:  # some providers give every attribute as a list
        value = value[0]
    if not isinstance(value, str | int):
        raise jwt.InvalidTokenError(f"claim {name!r} is not a single value")
    return str(value)


def oidc_role(settings: ServiceSettings, claims: Mapping[str, Any]) -> Role:
    """Our role from the provider's role claim (one value or a list), through `auth_role_map`; a token
    whose values name no role of ours, or more than one, is refused."""
    raw = _claim(claims, settings.auth_role_claim)
    values = raw if isinstance(raw, list) else [] if raw is None else [raw]
    mapping = settings.auth_role_map
    roles: set[Role] = set()
    for value in values:
        if not isinstance(value, str):
            continue
        if mapping:
            if value in mapping:
                roles.add(Role(mapping[value]))
        elif value in Role._value2member_map_:
            roles.add(Role(value))
    if len(roles) != 1:
        why = "no role of ours" if not roles else f"several roles ({', '.join(sorted(roles))})"
        raise jwt.InvalidTokenError(f"claim {settings.auth_role_claim!r} names {why}")
    return roles.pop()


def oidc_principal(settings: ServiceSettings, claims: Mapping[str, Any]) -> Principal:
    """Who the provider's (verified) token names, by the claim names of the settings."""
    role = oidc_role(settings, claims)
    sub = _text(claims, settings.auth_subject_claim)
    if sub is None:
        raise jwt.MissingRequiredClaimError(settings.auth_subject_claim)
    department = _text(claims, settings.auth_department_claim)
    if role is Role.DEPT_WORKER and department is None:
        raise jwt.MissingRequiredClaimError(settings.auth_department_claim)
    return Principal(
        sub=sub,
        role=role,
        department=department,
        district=_text(claims, settings.auth_district_claim),
        name=_text(claims, settings.auth_name_claim),
    )


class TokenVerifier:
    """Verifies a bearer token by the service's `auth_mode`: the shared secret's HS256 tokens, the
    identity provider's public-key tokens, or both (told apart by the token's `alg`; a token is never
    checked with the other issuer's rule, so a public key can never pass for a shared secret)."""

    VERIFIED_KEPT = 4096  # tokens whose verification is remembered (each staff member's one or two)

    def __init__(self, settings: ServiceSettings, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.settings = settings
        self.jwks = JwksCache(settings, transport=transport) if settings.accepts_oidc else None
        # A token verified once is the same principal until it expires: the next requests with it skip the
        # signature and claim checks (about 90 µs each for HS256, more for RS256). An identity provider's
        # token is remembered with the key that verified it, and only while the key set (refreshed as
        # before) still holds that very key: a retired key's tokens are refused from its refresh on.
        self._verified: OrderedDict[str, tuple[float, Principal, jwt.PyJWK | None]] = OrderedDict()
        self.verifications = 0  # signatures checked (tests)
        self.clock: Callable[[], float] = time.time  # what "now" is for a remembered token (tests move it)

    async def principal(self, token: str) -> Principal:
        kept = self._verified.get(token)
        if kept is not None:
            expires, principal, key = kept
            if self.clock() < expires and (key is None or await self._key(token) is key):
                self._verified.move_to_end(token)
                return principal
            del self._verified[token]
        principal, key, exp = await self._verify(token)
        self.verifications += 1
        if isinstance(exp, int | float):
            self._verified[token] = (float(exp), principal, key)
            if len(self._verified) > self.VERIFIED_KEPT:
                self._verified.popitem(last=False)
        return principal

    def _oidc(self, header: Mapping[str, Any]) -> bool:
        return self.jwks is not None and header.get("alg") in self.settings.auth_oidc_algorithms

    async def _key(self, token: str) -> jwt.PyJWK | None:
        """The identity provider's key for this token now (None if it is not one of its tokens)."""
        header = jwt.get_unverified_header(token)
        if self.jwks is None or not self._oidc(header):
            return None
        try:
            return await self.jwks.key(header.get("kid"))
        except (KeysUnavailable, jwt.PyJWTError):
            return None  # not remembered then: verifying it again says why it is refused

    async def _verify(self, token: str) -> tuple[Principal, jwt.PyJWK | None, Any]:
        """The token's principal, the provider's key that verified it (None: the shared secret) and its
        `exp` claim."""
        s = self.settings
        header = jwt.get_unverified_header(token)
        alg = header.get("alg")
        if self.jwks is not None and self._oidc(header):
            key = await self.jwks.key(header.get("kid"))
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[str(alg)],
                audience=s.auth_oidc_audience,
                issuer=s.auth_oidc_issuer,
                leeway=s.auth_oidc_leeway_s,
                options={"require": ["exp", "iss", "aud"]},
            )
            return oidc_principal(s, claims), key, claims["exp"]
        if s.accepts_shared_secret:
            claims = _shared_secret_claims(s, token)
            return _shared_secret_principal(claims), None, claims["exp"]
        raise jwt.InvalidAlgorithmError(f"tokens signed with {alg!r} are not accepted here")


def token_verifier(app: FastAPI) -> TokenVerifier:
    """The app's verifier (made once, with its key cache); `create_service_app` makes it at build time."""
    verifier: TokenVerifier | None = getattr(app.state, "token_verifier", None)
    if verifier is None or verifier.settings is not app.state.settings:  # a test swapped the settings
        verifier = app.state.token_verifier = TokenVerifier(app.state.settings)
    return verifier


_bearer = HTTPBearer(auto_error=False)

# The dependencies that establish who is calling (a route taking one of them needs a token or a session):
# `current_principal` here, and the front door's session. `common.openapi` declares 401/403 from them.
AUTHENTICATORS: set[Callable[..., Any]] = set()

Dependency = TypeVar("Dependency", bound=Callable[..., Any])


def authenticates(dependency: Dependency) -> Dependency:
    """Mark a dependency as one that establishes who is calling (refusing with 401 when nobody is)."""
    AUTHENTICATORS.add(dependency)
    return dependency


def _unauthorized(zh: str, en: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED,
        detail={"message_zh": zh, "message_en": en},
        headers={"WWW-Authenticate": "Bearer"},
    )


@authenticates
async def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise _unauthorized("缺少登录凭证", "missing bearer token")
    try:
        return await token_verifier(request.app).principal(credentials.credentials)
    except KeysUnavailable as exc:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail={
                "message_zh": "暂时无法核验登录凭证，请稍后重试",
                "message_en": "the identity provider's keys cannot be fetched; try again shortly",
            },
        ) from exc
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
