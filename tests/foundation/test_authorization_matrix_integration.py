"""The authorization matrix, generated from every service's route table: every route × every role
(operator, department worker, relief officer, coordinator, admin), no token and bad tokens (wrong
signature, expired, unknown role) → allowed or refused as `RULES` declares, against the services started
as processes on the real broker and store. A route that `RULES` does not name fails the test: a new
route must declare who may call it. Scope (own / other district, own / other department) is the second
axis, on real records: test_authorization_scope_integration.py (`SCOPES`).

`allowed` means neither 401 nor 403 (the request may still be refused for its content: 404, 409, 422);
`refused` means 403 for a valid token of another role, 401 for no token or a bad one.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.authorization import (
    API_KEY,
    BAD,
    PUBLIC,
    RULES,
    SERVICES,
    admitted,
    role_tokens,
    served_routes,
)
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.integration

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


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, mongodb_url: str) -> Iterator[ServiceSet]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServiceSet(kafka_bootstrap, mongodb_url, SERVICES, Path(tmp), isolated_topics=True) as services,
    ):
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
