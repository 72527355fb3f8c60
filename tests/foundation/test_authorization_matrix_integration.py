"""The authorization matrix, generated from every service's route table: every route × every role
(operator, department worker, relief officer, coordinator, admin), no token and bad tokens (wrong
signature, expired, unknown role) → allowed or refused as `RULES` declares, against the services started
as processes on the real broker and store. A route that `RULES` does not name fails the test: a new
route must declare who may call it. Scope (own / other district, own / other department) is the second
axis, on real records: test_authorization_scope_integration.py (`SCOPES`).

The front door is in the matrix too (`FRONT_DOOR_RULES`): its routes × a session of every role, by bearer
token and by cookie, and the tokens it does not take (bad ones, a services' token naming no session of
its own, a signed-out session's token and cookie); behind `/<service>/` it must answer what the service
answers to the token it passes on.

`allowed` means neither 401 nor 403 (the request may still be refused for its content: 404, 409, 422);
`refused` means 403 for a valid token of another role, 401 for no token or a bad one.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from services.frontdoor.dev_accounts import DEV_PASSWORD
from services.frontdoor.sessions import COOKIE
from tests.support.authorization import (
    ADMIN,
    API_KEY,
    BAD,
    CITY,
    COORD,
    FRONT_DOOR_RULES,
    OFFICER,
    OP,
    PROXIED,
    PUBLIC,
    RULES,
    SERVICES,
    SIGNED_IN,
    WORKER,
    Rule,
    admitted,
    role_tokens,
    served_routes,
)
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.integration

FRONT_DOOR = "frontdoor"

CASE = "CQ-20260215-000001"
PATH_VALUES = {
    "case_id": CASE,
    "task_id": f"{CASE}-T1",
    "year": "2027",
    "partition": "0",
    "offset": "0",
    "fmt": "json",
    "topic": "router.case-lifecycle.v1.dlq",
}


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_every_route_declares_who_may_call_it_and_the_rule_matches_its_dependencies(service: str) -> None:
    served = served_routes(service)
    undeclared = [f"{m} {p}" for m, p, _, _ in served if (m, p) not in RULES[service]]
    assert undeclared == [], f"declare who may call these {service} routes in RULES"
    stale = sorted(set(RULES[service]) - {(m, p) for m, p, _, _ in served})
    assert stale == [], f"RULES names {service} routes that no longer exist"
    for method, path, needs_token, _ in served:
        assert (RULES[service][(method, path)] in (PUBLIC, API_KEY)) == (not needs_token), f"{method} {path}"


@pytest.mark.unit
def test_every_front_door_route_declares_who_may_call_it_and_the_rule_matches_its_dependencies() -> None:
    served = served_routes(FRONT_DOOR)
    undeclared = [f"{m} {p}" for m, p, _, _ in served if (m, p) not in FRONT_DOOR_RULES]
    assert undeclared == [], "declare who may call these front door routes in FRONT_DOOR_RULES"
    stale = sorted(set(FRONT_DOOR_RULES) - {(m, p) for m, p, _, _ in served})
    assert stale == [], "FRONT_DOOR_RULES names routes the front door no longer serves"
    for method, path, needs_token, _ in served:
        rule = FRONT_DOOR_RULES[(method, path)]
        assert (rule == SIGNED_IN or isinstance(rule, set)) == needs_token, f"{method} {path}"


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, mongodb_url: str) -> Iterator[ServiceSet]:
    with tempfile.TemporaryDirectory() as tmp:
        services = ServiceSet(kafka_bootstrap, mongodb_url, (*SERVICES, FRONT_DOOR), Path(tmp), isolated_topics=True)
        door = services[FRONT_DOOR]
        door.env.update({f"FRONTDOOR_{name.upper()}_URL": services[name].url for name in SERVICES})
        door.env["FRONTDOOR_ENVIRONMENT"] = "development"  # its development accounts, one per role
        with services:
            yield services


def _call(http: httpx.Client, base: str, method: str, path: str, has_body: bool, token: str | None) -> int:
    url = base + re.sub(r"\{(\w+)\}", lambda m: PATH_VALUES.get(m.group(1), "x1"), path)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return http.request(method, url, headers=headers, json={} if has_body else None).status_code


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_admits_its_roles_and_refuses_the_others_and_every_bad_token(
    service: str, stack: ServiceSet
) -> None:
    tokens = role_tokens()
    base = stack[service].url
    wrong: list[str] = []
    with httpx.Client(timeout=60) as http:
        for method, path, _, has_body in served_routes(service):
            rule = RULES[service][(method, path)]
            for who, token in tokens.items():
                status = _call(http, base, method, path, has_body, token)
                refused = status in (401, 403)
                if rule == PUBLIC:
                    expected = "allowed"
                elif rule == API_KEY:
                    expected = "403"
                elif who in BAD:
                    expected = "401"
                else:
                    expected = "allowed" if isinstance(rule, set) and admitted(who, rule) else "403"
                ok = not refused if expected == "allowed" else status == int(expected)
                if not ok:
                    wrong.append(f"{method} {path} as {who}: {status}, expected {expected}")
    assert wrong == []


# ------------------------------------------------------------------------------- the front door

ACCOUNTS = {OP: "operator", WORKER: "worker", OFFICER: "relief", COORD: "coordinator", ADMIN: "admin"}
CITY_ACCOUNT = "city.coordinator"
# Behind the door, per service: a GET admitting one role of its own, and a POST for admins only.
PROXIED_GET = {
    "hotline": "api/v1/cases/recent",
    "router": "api/v1/queue",
    "relief": "api/v1/entitlements",
    "notify": "api/v1/counts",
}
PROXIED_OTHER = "api/v1/admin/dead-letters/replay"


@dataclass(frozen=True)
class DoorCaller:
    who: str
    headers: dict[str, str]
    role: str | None  # None: not a live session of the front door
    upstream: str | None  # the token the service is given (compared with calling it directly)


def _sign_in(http: httpx.Client, door: str, username: str, password: str = DEV_PASSWORD) -> tuple[str, str, str]:
    """(access token, refresh token, cookie) of two new sessions of one account: an API client's, a browser's."""
    api = http.post(f"{door}/auth/token", json={"username": username, "password": password})
    assert api.status_code == 200, api.text
    browser = http.post(f"{door}/auth/sign-in", json={"username": username, "password": password})
    assert browser.status_code == 200, browser.text
    return api.json()["access_token"], api.json()["refresh_token"], browser.cookies[COOKIE]


def door_callers(http: httpx.Client, door: str) -> list[DoorCaller]:
    """A bearer token and a cookie of a session of every role (a city coordinator's account made by the
    admin), and callers the door does not take: no token, bad ones, a services' token naming no session,
    a signed-out API client's token, a signed-out browser's cookie."""
    admin_token, _, _ = _sign_in(http, door, ACCOUNTS[ADMIN])
    account = {"username": CITY_ACCOUNT, "display_name": "统筹 市级", "role": COORD, "district": "city"}
    made = http.post(
        f"{door}/api/v1/accounts",
        json=account | {"password": "matrix-password-1"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert made.status_code == 201, made.text
    found: list[DoorCaller] = []
    for role, username in [*ACCOUNTS.items(), (CITY, CITY_ACCOUNT)]:
        access, _, cookie = _sign_in(http, door, username, "matrix-password-1" if role == CITY else DEV_PASSWORD)
        found.append(DoorCaller(f"{role} (token)", {"Authorization": f"Bearer {access}"}, role, access))
        found.append(DoorCaller(f"{role} (cookie)", {"Cookie": f"{COOKIE}={cookie}"}, role, access))
    for who, bad in role_tokens().items():
        if who in BAD:
            found.append(DoorCaller(who, {"Authorization": f"Bearer {bad}"} if bad else {}, None, bad))
    services_token = role_tokens()[ADMIN] or ""
    found.append(DoorCaller("no session", {"Authorization": f"Bearer {services_token}"}, None, services_token))
    access, refresh, cookie = _sign_in(http, door, ACCOUNTS[ADMIN])
    assert http.post(f"{door}/auth/token/revoke", json={"refresh_token": refresh}).status_code == 204
    assert http.post(f"{door}/auth/sign-out", headers={"Cookie": f"{COOKIE}={cookie}"}).status_code == 204
    found.append(DoorCaller("signed out (token)", {"Authorization": f"Bearer {access}"}, None, access))
    found.append(DoorCaller("signed out (cookie)", {"Cookie": f"{COOKIE}={cookie}"}, None, None))
    return found


def _expected(rule: Rule, caller: DoorCaller) -> str:
    if rule == PUBLIC:
        return "allowed"
    if caller.role is None:
        return "401"
    if rule == SIGNED_IN:
        return "allowed"
    return "allowed" if isinstance(rule, set) and admitted(caller.role, rule) else "403"


def _proxied(http: httpx.Client, stack: ServiceSet, method: str, service: str, caller: DoorCaller) -> str | None:
    """What is wrong with the door's answer behind `/<service>/`: it must be the service's own answer to the
    token the door passes on (a signed-out cookie goes no further than the door: 401)."""
    inner = PROXIED_GET[service] if method == "GET" else PROXIED_OTHER
    body: dict[str, object] | None = {} if method == "POST" else None
    got = http.request(method, f"{stack[FRONT_DOOR].url}/{service}/{inner}", headers=caller.headers, json=body)
    if caller.upstream is None and "Cookie" in caller.headers:
        expected = 401
    else:
        upstream = {"Authorization": f"Bearer {caller.upstream}"} if caller.upstream else {}
        expected = http.request(method, f"{stack[service].url}/{inner}", headers=upstream, json=body).status_code
    if got.status_code == expected:
        return None
    return f"{method} /{service}/{inner} as {caller.who}: {got.status_code}, expected {expected}"


def test_every_front_door_route_admits_its_roles_and_refuses_the_others_and_every_bad_token(
    stack: ServiceSet,
) -> None:
    """Its own routes as `FRONT_DOOR_RULES` says, by bearer token and by cookie; behind `/<service>/` the
    service's own answer to the token the door passes on (a cookie's: its session's), and a signed-out
    cookie refused at the door (401)."""
    door = stack[FRONT_DOOR].url
    wrong: list[str] = []
    checked = 0
    with httpx.Client(timeout=60, follow_redirects=False) as http:
        callers = door_callers(http, door)
        # Signing out ends the caller's session: the last route each caller is sent to.
        routes = sorted(served_routes(FRONT_DOOR), key=lambda r: r[:2] == ("POST", "/auth/sign-out"))
        for method, path, _, has_body in routes:
            rule = FRONT_DOOR_RULES[(method, path)]
            for caller in callers:
                checked += 1
                if rule == PROXIED:
                    if problem := _proxied(http, stack, method, path.split("/")[1], caller):
                        wrong.append(problem)
                    continue
                url = door + re.sub(r"\{(\w+)\}", "x1", path)
                status = http.request(method, url, headers=caller.headers, json={} if has_body else None).status_code
                expected_text = _expected(rule, caller)
                ok = status not in (401, 403) if expected_text == "allowed" else status == int(expected_text)
                if not ok:
                    wrong.append(f"{method} {path} as {caller.who}: {status}, expected {expected_text}")
    print(f"front door checks: {checked}")
    assert wrong == []
