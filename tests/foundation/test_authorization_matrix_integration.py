"""The authorization matrix, generated from every service's route table: every route × every role
(operator, department worker, relief officer, coordinator, admin), no token and bad tokens (wrong
signature, expired, unknown role) → allowed or refused as `RULES` declares, against the services started
as processes on the real broker and store. A route that `RULES` does not name fails the test: a new
route must declare who may call it. Scope (own / other district, own / other department) is checked
on the routes that decide it from the token and one real case (`test_scope_*`).

`allowed` means neither 401 nor 403 (the request may still be refused for its content: 404, 409, 422);
`refused` means 403 for a valid token of another role, 401 for no token or a bad one.
"""

from __future__ import annotations

import importlib
import re
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest

from common.auth import issue_token
from common.openapi import api_routes, authenticated
from common.settings import DEV_JWT_SECRET, ServiceSettings
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.integration

SERVICES = ("hotline", "router", "relief", "notify")
PUBLIC = "public"
API_KEY = "api_key"  # Open311: the client's api_key, whatever the token (refused with 403 without it)
OP, WORKER, OFFICER, COORD, ADMIN = "operator", "dept_worker", "relief_officer", "coordinator", "admin"
CITY = "coordinator (city)"  # a coordinator whose district is `city`; a rule naming CITY admits only them
DESK = "desk"  # the department's desk: a worker whose token names a department and a district (so not an admin)

# Who may call each route (admin is always admitted, so it is not repeated): the declared rule, read from
# each route's dependencies (`common.auth.require_roles`) and the service's README.
Rule = str | set[str]
COMMON: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/reference"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/api/v1/admin/dead-letters"): {ADMIN},
    ("GET", "/api/v1/admin/dead-letters/{topic}/{partition}/{offset}"): {ADMIN},
    ("POST", "/api/v1/admin/dead-letters/replay"): {ADMIN},
    ("GET", "/api/v1/status/delivery"): {COORD},
}
RULES: dict[str, dict[tuple[str, str], Rule]] = {
    "hotline": {
        **COMMON,
        ("GET", "/api/v1/cases/search"): {OP, COORD},
        ("GET", "/api/v1/callbacks/due"): {OP, COORD},
        ("GET", "/api/v1/cases/{case_id}/slip"): {OP, COORD},
        ("POST", "/api/v1/help-requests"): {OP},
        ("POST", "/api/v1/help-requests/matches"): {OP},
        ("GET", "/api/v1/cases"): {OP},
        ("GET", "/api/v1/cases/recent"): {OP},
        ("GET", "/api/v1/cases/{case_id}"): {OP},
        ("GET", "/api/v1/cases/{case_id}/status"): {OP},
        ("GET", "/api/v1/cases/{case_id}/audit"): {COORD},
        ("POST", "/api/v1/cases/{case_id}/follow-ups"): {OP},
        ("POST", "/api/v1/cases/{case_id}/warm-transfers"): {OP},
        ("POST", "/api/v1/cases/{case_id}/callbacks"): {OP},
        # Open311 GeoReport v2: public reads; a submission needs the client's api_key, not a token.
        ("GET", "/open311/v2/services.{fmt}"): PUBLIC,
        ("GET", "/open311/v2/services/{code}.{fmt}"): PUBLIC,
        ("GET", "/open311/v2/requests.{fmt}"): PUBLIC,
        ("GET", "/open311/v2/requests/{request_id}.{fmt}"): PUBLIC,
        ("POST", "/open311/v2/requests.{fmt}"): API_KEY,
    },
    "router": {
        **COMMON,
        ("GET", "/api/v1/queue"): {DESK},
        ("GET", "/api/v1/cases/{case_id}"): {WORKER, COORD},
        ("POST", "/api/v1/tasks/{task_id}/sign-for"): {DESK},
        ("POST", "/api/v1/tasks/{task_id}/progress"): {DESK},
        ("POST", "/api/v1/tasks/{task_id}/co-handling"): {DESK},
        ("POST", "/api/v1/tasks/{task_id}/resolve"): {DESK},
        ("POST", "/api/v1/tasks/{task_id}/waive"): {DESK},
        ("POST", "/api/v1/tasks/{task_id}/return"): {DESK},
        ("GET", "/api/v1/coordinator/cases"): {COORD},
        ("POST", "/api/v1/coordinator/cases/{case_id}/arbitration"): {COORD},
        ("POST", "/api/v1/coordinator/cases/{case_id}/reassign"): {COORD},
        ("POST", "/api/v1/coordinator/cases/{case_id}/lead"): {COORD},
        ("POST", "/api/v1/coordinator/cases/{case_id}/merge"): {COORD},
        ("POST", "/api/v1/cases/{case_id}/reveal"): {WORKER, COORD},
        ("GET", "/api/v1/cases/{case_id}/reveals"): {WORKER, COORD},
        ("GET", "/api/v1/escalations"): {WORKER, COORD},
        ("POST", "/api/v1/escalations/{escalation_event_id}/acknowledge"): {DESK},
    },
    "relief": {
        **COMMON,
        ("GET", "/api/v1/entitlements"): {OFFICER},
        ("GET", "/api/v1/entitlements/{entitlement_id}"): {OFFICER},
        ("POST", "/api/v1/entitlements/{entitlement_id}/approve"): {OFFICER},
        ("POST", "/api/v1/entitlements/{entitlement_id}/reject"): {OFFICER},
        ("POST", "/api/v1/entitlements/{entitlement_id}/cancel"): {OFFICER},
        ("POST", "/api/v1/entitlements/{entitlement_id}/discharge"): {OFFICER},
        ("POST", "/api/v1/entitlements/{entitlement_id}/payments"): {OFFICER},
        ("GET", "/api/v1/cases/{case_id}/ledger"): {OFFICER, COORD},
        ("GET", "/api/v1/recipients/{recipient_id}/ledger"): {OFFICER, COORD},
        ("POST", "/api/v1/ledger/by-id-card"): {OFFICER, COORD},
        ("POST", "/api/v1/registry/import"): {OFFICER, COORD},
        ("GET", "/api/v1/registry/{recipient_id}"): {OFFICER, COORD},
        ("POST", "/api/v1/runs"): {COORD},
        ("POST", "/api/v1/runs/{run_id}/execute"): {COORD},
        ("GET", "/api/v1/runs"): {OFFICER, COORD},
        ("GET", "/api/v1/runs/{run_id}"): {OFFICER, COORD},
        ("GET", "/api/v1/standards"): {OFFICER, COORD},
        ("POST", "/api/v1/admin/standards"): {ADMIN},
        ("POST", "/api/v1/entitlements/{entitlement_id}/applicant/phone"): {OFFICER},
        ("GET", "/api/v1/payments/pending"): {OFFICER},
        ("GET", "/api/v1/payments/export"): {OFFICER},
        ("POST", "/api/v1/payments/returns"): {OFFICER},
        ("GET", "/api/v1/registry"): {OFFICER, COORD},
        ("GET", "/api/v1/hukou-notices"): {OFFICER},
        ("POST", "/api/v1/hukou-notices/{grant_id}/acknowledge"): {OFFICER},
        ("GET", "/api/v1/standards/rules"): {OFFICER, COORD},
        ("POST", "/api/v1/admin/standards/rules"): {ADMIN},
        # The care register (P2.2, P5.3): officers and coordinators keep it; the named workers visit.
        ("POST", "/api/v1/care/register"): {OFFICER, COORD},
        ("GET", "/api/v1/care/register"): {OFFICER, COORD},
        ("GET", "/api/v1/care/mine"): {WORKER, OFFICER, COORD},
        ("GET", "/api/v1/care/register/{entry_id}"): {WORKER, OFFICER, COORD},
        ("GET", "/api/v1/care/register/{entry_id}/visits"): {WORKER, OFFICER, COORD},
        ("POST", "/api/v1/care/register/{entry_id}/visits"): {WORKER, OFFICER, COORD},
        ("POST", "/api/v1/care/register/{entry_id}/worker"): {OFFICER, COORD},
    },
    "notify": {
        **COMMON,
        ("GET", "/api/v1/cases"): {COORD},
        ("GET", "/api/v1/counts"): {COORD},
        ("GET", "/api/v1/overdue"): {COORD},
        ("GET", "/api/v1/at-risk"): {COORD},
        ("GET", "/api/v1/unassigned"): {COORD},
        ("GET", "/api/v1/returned"): {COORD},
        ("GET", "/api/v1/rates"): {COORD},
        ("GET", "/api/v1/cases/{case_id}"): {COORD},
        ("POST", "/api/v1/cases/{case_id}/pause"): {WORKER, COORD},
        ("POST", "/api/v1/cases/{case_id}/resume"): {WORKER, COORD},
        ("GET", "/api/v1/notifications"): {CITY},  # a district coordinator asks per case (case_id)
        ("GET", "/api/v1/sla-policy"): {WORKER, COORD},
        ("GET", "/api/v1/reports"): {COORD},
        ("GET", "/api/v1/cases/{case_id}/escalation-notice"): {COORD},
        ("GET", "/api/v1/calendar"): {COORD},
        ("POST", "/api/v1/calendar/{year}"): {ADMIN},
        ("GET", "/escalation-notice.html"): PUBLIC,
        ("GET", "/static/chart.umd.min.js"): PUBLIC,
    },
}

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


class _Tokens(ServiceSettings):
    service_name: str = "matrix"


def _tokens() -> dict[str, str | None]:
    """A token of every role (a worker of civil affairs and a coordinator and an officer of 渝中区 500103,
    a city coordinator, an admin), none, and three bad ones."""
    s = _Tokens()
    now = datetime.now(UTC)
    return {
        OP: issue_token(s, sub="m-op", role=OP, district="500103"),
        WORKER: issue_token(s, sub="m-w", role=WORKER, department="civil_affairs", district="500103"),
        OFFICER: issue_token(s, sub="m-ro", role=OFFICER, district="500103"),
        COORD: issue_token(s, sub="m-co", role=COORD, district="500103"),
        CITY: issue_token(s, sub="m-cc", role=COORD, district="city"),
        ADMIN: issue_token(s, sub="m-ad", role=ADMIN, district="city"),
        "no token": None,
        "wrong signature": jwt.encode(
            {"sub": "x", "role": ADMIN, "iss": s.jwt_issuer, "exp": now + timedelta(hours=1)},
            "somebody-else-s-secret-0123456789-abcdefghij",
            algorithm="HS256",
        ),
        "expired": issue_token(s, sub="m-e", role=ADMIN, district="city", now=now - timedelta(days=1)),
        "unknown role": jwt.encode(
            {"sub": "x", "role": "janitor", "iss": s.jwt_issuer, "exp": now + timedelta(hours=1)},
            DEV_JWT_SECRET,
            algorithm="HS256",
        ),
    }


def admitted(who: str, rule: set[str]) -> bool:
    """Whether a valid token of `who` passes `rule` (admin passes every rule but the desk's)."""
    if DESK in rule:
        return who == WORKER
    if who == ADMIN:
        return True
    if who == CITY:
        return COORD in rule or CITY in rule
    return who in rule


BAD = ("no token", "wrong signature", "expired", "unknown role")


def _routes(service: str) -> list[tuple[str, str, bool, bool]]:
    """(method, path, authenticated, has body) of every API route the service serves."""
    app = importlib.import_module(f"services.{service}.app").create_app()
    return sorted(
        (method, route.path, authenticated(route), route.has_body)
        for route in api_routes(app)
        for method in route.methods - {"HEAD"}
    )


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_every_route_declares_who_may_call_it_and_the_rule_matches_its_dependencies(service: str) -> None:
    served = _routes(service)
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
    tokens = _tokens()
    base = stack[service].url
    wrong: list[str] = []
    with httpx.Client(timeout=60) as http:
        for method, path, _, has_body in _routes(service):
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


def _post(http: httpx.Client, url: str, token: str, body: dict[str, object] | None = None) -> httpx.Response:
    return http.post(url, headers={"Authorization": f"Bearer {token}"}, json=body)


def test_scope_a_department_works_only_its_own_tasks_of_its_own_district(stack: ServiceSet) -> None:
    """Own / other department / other district on the router's desk, on a real case dispatched to civil
    affairs of 渝中区 (500103)."""
    s = _Tokens()
    tokens = _tokens()
    with httpx.Client(timeout=60) as http:
        call: dict[str, object] = {
            "caller": {"name": "矩阵", "phone": "13812340000"},
            "place": {"district": "500103", "address": "民族路 1 号"},
            "needs": ["temp_assist_major"],
            "household_status": "low_income",
            "description": "授权矩阵测试",
        }
        taken = _post(http, f"{stack['hotline'].url}/api/v1/help-requests", tokens[OP] or "", call)
        assert taken.status_code == 201, taken.text
        case_id = taken.json()["case_id"]
        own = tokens[WORKER] or ""
        queue: list[dict[str, object]] = []
        for _ in range(120):
            reply = http.get(f"{stack['router'].url}/api/v1/queue", headers={"Authorization": f"Bearer {own}"})
            queue = [t for t in reply.json() if t["case_id"] == case_id]
            if queue:
                break
            import time

            time.sleep(0.5)
        assert queue, "the case never reached civil affairs' queue"
        task = f"{stack['router'].url}/api/v1/tasks/{queue[0]['task_id']}/sign-for"
        other_dept = issue_token(s, sub="m-h", role=WORKER, department="hrss", district="500103")
        other_district = issue_token(s, sub="m-d", role=WORKER, department="civil_affairs", district="500106")
        no_scope = issue_token(s, sub="m-n", role=WORKER)  # a worker token naming no department or district
        for token in (other_dept, other_district, no_scope):
            assert _post(http, task, token).status_code == 403
        assert _post(http, task, own).status_code == 200
        case_url = f"{stack['router'].url}/api/v1/cases/{case_id}"
        other_coord = issue_token(s, sub="m-c2", role=COORD, district="500106")
        assert http.get(case_url, headers={"Authorization": f"Bearer {other_coord}"}).status_code in (403, 404)
        assert http.get(case_url, headers={"Authorization": f"Bearer {tokens[COORD]}"}).status_code == 200
        assert http.get(case_url, headers={"Authorization": f"Bearer {other_district}"}).status_code in (403, 404)
