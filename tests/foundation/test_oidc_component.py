"""The city's identity provider as the tokens' issuer: a local provider (discovery document and JWKS over
HTTP on 127.0.0.1, a generated RSA key) and a service app that verifies its RS256/ES256 tokens."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Annotated, Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fastapi import APIRouter, Depends

from common.app import create_service_app
from common.auth import current_principal, issue_token
from common.principal import Principal
from common.settings import ServiceSettings

pytestmark = pytest.mark.component

AUDIENCE = "relief-hotline"
ROLE_MAP = {"hotline-operator": "operator", "dept-staff": "dept_worker", "city-coordinator": "coordinator"}


class Provider:
    """A stand-in identity provider: its keys can be rotated; it counts what it is asked."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}  # kid -> private key, all published
        self.requests: list[str] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                provider.requests.append(self.path)
                body: dict[str, Any]
                if self.path == "/realms/city/.well-known/openid-configuration":
                    body = {"issuer": provider.issuer, "jwks_uri": f"{provider.url}/realms/city/certs"}
                elif self.path == "/realms/city/certs":
                    body = {"keys": [provider.public_jwk(kid) for kid in provider.keys]}
                else:
                    self.send_error(404)
                    return
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.issuer = f"{self.url}/realms/city"

    def add_key(self, kid: str, key: Any = None) -> Any:
        self.keys[kid] = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return self.keys[kid]

    def public_jwk(self, kid: str) -> dict[str, Any]:
        key = self.keys[kid]
        if isinstance(key, rsa.RSAPrivateKey):
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "RS256"}
        else:
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"alg": "ES256"}
        return jwk | {"kid": kid, "use": "sig"}

    def token(self, kid: str = "k1", *, key: Any = None, alg: str = "RS256", **claims: Any) -> str:
        now = datetime.now(UTC)
        body = {
            "iss": self.issuer,
            "aud": [AUDIENCE, "account"],
            "sub": "5f1c0d2e-opaque",
            "preferred_username": "wang.fang",
            "name": "接线员 王芳",
            "realm_access": {"roles": ["offline_access", "hotline-operator"]},
            "district": "500103",
            "iat": now,
            "exp": now + timedelta(minutes=5),
        } | claims
        return jwt.encode(body, key or self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    p.add_key("k1")
    thread = threading.Thread(target=p.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield p
    p.server.shutdown()
    p.server.server_close()


def oidc_settings(provider: Provider, **overrides: Any) -> ServiceSettings:
    fields: dict[str, Any] = {
        "service_name": "oidc-test",
        "environment": "test",
        "auth_mode": "oidc",
        "auth_oidc_issuer": provider.issuer,
        "auth_oidc_audience": AUDIENCE,
        "auth_oidc_refetch_min_s": 0,
        "auth_subject_claim": "preferred_username",
        "auth_role_claim": "realm_access.roles",
        "auth_role_map": ROLE_MAP,
    }
    return ServiceSettings(**(fields | overrides))


def service(settings: ServiceSettings) -> httpx.AsyncClient:
    """A service built as every service is, with one route that says who is asking."""
    router = APIRouter()

    @router.get("/whoami")
    async def whoami(principal: Annotated[Principal, Depends(current_principal)]) -> dict[str, Any]:
        return principal.model_dump(mode="json")

    app = create_service_app(settings, title="oidc test", routers=[router], kafka=False)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service.test")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_providers_rs256_token_is_accepted_with_its_claims_mapped_and_the_keys_cached(provider):
    async with service(oidc_settings(provider)) as api:
        r = await api.get("/whoami", headers=bearer(provider.token()))
        assert r.status_code == 200, r.text
        assert r.json() == {
            "sub": "wang.fang",
            "role": "operator",
            "department": None,
            "district": "500103",
            "name": "接线员 王芳",
        }
        worker = provider.token(
            realm_access={"roles": ["dept-staff"]}, department="civil_affairs", preferred_username="li.qiang"
        )
        assert (await api.get("/whoami", headers=bearer(worker))).json()["department"] == "civil_affairs"
    # Discovered once, the key set fetched once: no request to the provider per token.
    assert provider.requests == ["/realms/city/.well-known/openid-configuration", "/realms/city/certs"]


@pytest.mark.parametrize(
    "case",
    ["wrong signature", "expired", "wrong issuer", "wrong audience", "unknown role", "two roles", "no audience"],
)
async def test_a_token_the_provider_did_not_issue_for_us_as_one_of_our_roles_is_refused(provider, case):
    now = datetime.now(UTC)
    token = {
        "wrong signature": lambda: provider.token(key=rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        "expired": lambda: provider.token(iat=now - timedelta(hours=1), exp=now - timedelta(minutes=5)),
        "wrong issuer": lambda: provider.token(iss="https://another.example/realms/city"),
        "wrong audience": lambda: provider.token(aud="another-app"),
        "unknown role": lambda: provider.token(realm_access={"roles": ["offline_access", "librarian"]}),
        "two roles": lambda: provider.token(realm_access={"roles": ["hotline-operator", "city-coordinator"]}),
        "no audience": lambda: provider.token(aud=None),
    }[case]()
    async with service(oidc_settings(provider)) as api:
        r = await api.get("/whoami", headers=bearer(token))
    assert r.status_code == 401, r.text
    assert r.json()["detail"]["message_zh"] == "登录凭证无效或已过期"


async def test_a_rotated_key_is_fetched_when_a_token_names_it(provider):
    async with service(oidc_settings(provider)) as api:
        assert (await api.get("/whoami", headers=bearer(provider.token("k1")))).status_code == 200
        provider.add_key("k2")
        retired = provider.keys.pop("k1")
        r = await api.get("/whoami", headers=bearer(provider.token("k2")))
        assert r.status_code == 200, r.text
        assert provider.requests.count("/realms/city/certs") == 2
        # The retired key went with the refresh: its tokens are refused from now on.
        r = await api.get("/whoami", headers=bearer(provider.token("k1", key=retired)))
        assert r.status_code == 401


async def test_unknown_key_ids_refetch_at_most_once_per_interval(provider):
    async with service(oidc_settings(provider, auth_oidc_refetch_min_s=300)) as api:
        assert (await api.get("/whoami", headers=bearer(provider.token("k1")))).status_code == 200
        stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for n in range(3):
            r = await api.get("/whoami", headers=bearer(provider.token(f"made-up-{n}", key=stranger)))
            assert r.status_code == 401
    assert provider.requests.count("/realms/city/certs") == 1


async def test_es256_tokens_and_a_configured_jwks_url_work_too(provider):
    provider.add_key("ec1", ec.generate_private_key(ec.SECP256R1()))
    settings = oidc_settings(provider, auth_oidc_jwks_url=f"{provider.url}/realms/city/certs")
    async with service(settings) as api:
        r = await api.get("/whoami", headers=bearer(provider.token("ec1", alg="ES256")))
    assert r.status_code == 200, r.text
    assert provider.requests == ["/realms/city/certs"]  # no discovery needed


async def test_the_shared_secret_is_refused_under_oidc_alone_and_accepted_beside_it(provider):
    oidc_only = oidc_settings(provider)
    front_door_token = issue_token(oidc_only, sub="operator", role="operator", district="500103")
    async with service(oidc_only) as api:
        assert (await api.get("/whoami", headers=bearer(front_door_token))).status_code == 401
    async with service(oidc_settings(provider, auth_mode="oidc_and_shared_secret")) as api:
        assert (await api.get("/whoami", headers=bearer(front_door_token))).json()["sub"] == "operator"
        assert (await api.get("/whoami", headers=bearer(provider.token()))).json()["sub"] == "wang.fang"


async def test_an_unreachable_provider_is_a_503_not_a_bad_token(provider):
    provider.server.shutdown()
    provider.server.server_close()
    async with service(oidc_settings(provider, auth_oidc_timeout_s=2)) as api:
        r = await api.get("/whoami", headers=bearer(provider.token()))
    assert r.status_code == 503 and "稍后重试" in r.json()["detail"]["message_zh"]


@pytest.mark.unit
def test_oidc_needs_an_issuer_and_an_audience_and_public_key_algorithms() -> None:
    with pytest.raises(ValueError, match="auth_oidc_issuer"):
        ServiceSettings(service_name="x", auth_mode="oidc", auth_oidc_audience=AUDIENCE)
    with pytest.raises(ValueError, match="auth_oidc_audience"):
        ServiceSettings(service_name="x", auth_mode="oidc", auth_oidc_issuer="https://idp.example")
    with pytest.raises(ValueError, match="auth_oidc_algorithms"):
        ServiceSettings(
            service_name="x",
            auth_mode="oidc",
            auth_oidc_issuer="https://idp.example",
            auth_oidc_audience=AUDIENCE,
            auth_oidc_algorithms=("HS256",),
        )
    assert ServiceSettings(service_name="x").auth_mode == "shared_secret"  # the default stays


@pytest.mark.unit
def test_the_role_map_and_claim_names_come_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("AUTHTEST_AUTH_MODE", "oidc")
    monkeypatch.setenv("AUTHTEST_AUTH_OIDC_ISSUER", "https://idp.example/realms/city")
    monkeypatch.setenv("AUTHTEST_AUTH_OIDC_AUDIENCE", AUDIENCE)
    monkeypatch.setenv("AUTHTEST_AUTH_ROLE_CLAIM", "groups")
    monkeypatch.setenv("AUTHTEST_AUTH_ROLE_MAP", json.dumps(ROLE_MAP))

    class Prefixed(ServiceSettings):
        model_config = ServiceSettings.model_config | {"env_prefix": "AUTHTEST_"}
        service_name: str = "authtest"

    s = Prefixed()
    assert (s.auth_role_claim, s.auth_role_map["dept-staff"]) == ("groups", "dept_worker")
    assert s.accepts_oidc and not s.accepts_shared_secret
