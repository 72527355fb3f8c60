"""Who may call what, as the authorization tests declare it: every route's roles (`RULES`), every
role's reach (`SCOPES`: the caller's own district, own department, own person, or none), the tokens of
each role, and the route table of each service as it serves it. The tests in tests/foundation read them;
a route none of them names fails those tests."""

from __future__ import annotations

import importlib
from datetime import UTC, datetime, timedelta

import jwt

from common.auth import issue_token
from common.openapi import api_routes, authenticated
from common.settings import DEV_JWT_SECRET, ServiceSettings

SERVICES = ("hotline", "router", "relief", "notify")
DISTRICT, OTHER_DISTRICT = "500103", "500106"  # 渝中区, 沙坪坝区
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


class TokenSettings(ServiceSettings):
    service_name: str = "matrix"


def role_tokens() -> dict[str, str | None]:
    """A token of every role (a worker of civil affairs and a coordinator and an officer of 渝中区 500103,
    a city coordinator, an admin), none, and three bad ones."""
    s = TokenSettings()
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


def served_routes(service: str) -> list[tuple[str, str, bool, bool]]:
    """(method, path, authenticated, has body) of every API route the service serves."""
    app = importlib.import_module(f"services.{service}.app").create_app()
    return sorted(
        (method, route.path, authenticated(route), route.has_body)
        for route in api_routes(app)
        for method in route.methods - {"HEAD"}
    )


def token(role: str, *, district: str | None = DISTRICT, department: str | None = None, sub: str = "") -> str:
    """A valid token of one role, district and department."""
    return issue_token(
        TokenSettings(),
        sub=sub or f"m-{role}-{district}-{department}",
        role=role,
        department=department,
        district=district,
    )


# The front door: its own tokens are its sign-in sessions' (a bearer access token or the browser's cookie);
# a token that names no session of its own (`sid`) is not one of them. Behind `/<service>/` it forwards
# what it is given: a bearer token as it came, a cookie as the session's access token (`PROXIED`: the
# service's own answer, as if called directly with that token).
SIGNED_IN = "signed in"  # any role's live session
PROXIED = "proxied"
PROXY_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
FRONT_DOOR_RULES: dict[tuple[str, str], Rule] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): PUBLIC,
    ("GET", "/api/v1/reference"): PUBLIC,
    ("GET", "/"): PUBLIC,  # the sign-in page (a signed-in person is sent on to their workspace)
    ("GET", "/accounts"): PUBLIC,  # a redirect to /accounts/
    ("GET", "/accounts/"): PUBLIC,  # the page for an admin's session; others are sent to sign in or home
    ("GET", "/auth/session.js"): PUBLIC,
    ("POST", "/auth/sign-in"): PUBLIC,
    ("POST", "/auth/sign-out"): PUBLIC,
    ("POST", "/auth/token"): PUBLIC,
    ("POST", "/auth/token/refresh"): PUBLIC,
    ("POST", "/auth/token/revoke"): PUBLIC,
    ("GET", "/auth/session"): SIGNED_IN,
    ("GET", "/api/v1/accounts"): {ADMIN},
    ("POST", "/api/v1/accounts"): {ADMIN},
    ("GET", "/api/v1/accounts/{username}"): {ADMIN},
    ("PATCH", "/api/v1/accounts/{username}"): {ADMIN},
    ("POST", "/api/v1/accounts/{username}/disable"): {ADMIN},
    ("POST", "/api/v1/accounts/{username}/enable"): {ADMIN},
    ("POST", "/api/v1/accounts/{username}/password"): {ADMIN},
    ("GET", "/api/v1/audit"): {ADMIN},
    **{("GET", f"/{service}"): PUBLIC for service in SERVICES},  # a redirect to /<service>/
    **{(method, f"/{service}/{{path}}"): PROXIED for service in SERVICES for method in PROXY_METHODS},
}
