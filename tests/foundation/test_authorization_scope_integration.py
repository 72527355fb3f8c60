"""The authorization matrix's second axis: every route × every role it admits × own / other district,
own / other department (and, for the care register's visits, own / another person), against real
records made through the services' own APIs and events: two cases dispatched to civil affairs of 渝中区
(500103), their relief grants (one paid, its P5.2d notice told to 沙坪坝区 500106; one approved and unpaid),
a registry record, a care register entry, a subsidy run and an escalation (督办).

`SCOPES` declares each route's reach per role; a route that takes a token and is not in `SCOPES` fails
the test (a new route cannot skip it), and so does a scoped route, or one that names a record in its
path, without a `PROBES` entry saying how to call it on the real records.

Own scope: the call is not refused (neither 401 nor the probe's refusals, 403 and 404 unless it says
otherwise; it may still be refused for its content, 409 or 422) and, for a list, shows the record.
Other scope: the call is refused (403 or 404) or, for a list, answers without the record.
`none`: a token of another district is answered as one of the record's own.
"""

from __future__ import annotations

import re
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.events import SLA_EVENTS_TOPIC
from contracts.events.notify import SlaEscalated
from services.relief.domain.registry import id_card_check_char
from tests.support.authorization import (
    ADMIN,
    CITY,
    COORD,
    DESK,
    DISTRICT,
    OFFICER,
    OP,
    OTHER_DISTRICT,
    RULES,
    SERVICES,
    WORKER,
    Rule,
    served_routes,
    token,
)
from tests.support.processes import ServiceSet

pytestmark = pytest.mark.integration

NONE, DISTRICT_SCOPE, DEPARTMENT, PERSON = "none", "district", "department", "person"
# One scope for every role the route admits, or one per role. `district`: the caller's district (a city
# coordinator and an admin see every one); `department`: the caller's department in the caller's district;
# `person`: the person the record names (the care register's responsible worker); `none`: city-wide.
ScopeRule = str | dict[str, str]
COMMON: dict[tuple[str, str], ScopeRule] = {
    ("GET", "/api/v1/admin/dead-letters"): NONE,
    ("GET", "/api/v1/admin/dead-letters/{topic}/{partition}/{offset}"): NONE,
    ("POST", "/api/v1/admin/dead-letters/replay"): NONE,
    ("GET", "/api/v1/status/delivery"): NONE,  # the service's own delivery figures, no district's data
}
SCOPES: dict[str, dict[tuple[str, str], ScopeRule]] = {
    "hotline": {
        **COMMON,
        # Operators answer calls from the whole city and look up any caller; a coordinator sees their district.
        ("GET", "/api/v1/cases/search"): {OP: NONE, COORD: DISTRICT_SCOPE},
        ("GET", "/api/v1/callbacks/due"): {OP: NONE, COORD: DISTRICT_SCOPE},
        ("GET", "/api/v1/cases/{case_id}/slip"): {OP: NONE, COORD: DISTRICT_SCOPE},
        ("POST", "/api/v1/help-requests"): NONE,
        ("POST", "/api/v1/help-requests/matches"): NONE,
        ("GET", "/api/v1/cases"): NONE,
        ("GET", "/api/v1/cases/recent"): NONE,
        ("GET", "/api/v1/cases/{case_id}"): NONE,
        ("GET", "/api/v1/cases/{case_id}/status"): NONE,
        ("GET", "/api/v1/cases/{case_id}/audit"): DISTRICT_SCOPE,
        ("POST", "/api/v1/cases/{case_id}/follow-ups"): NONE,
        ("POST", "/api/v1/cases/{case_id}/warm-transfers"): NONE,
        ("POST", "/api/v1/cases/{case_id}/callbacks"): NONE,
    },
    "router": {
        **COMMON,
        ("GET", "/api/v1/queue"): DEPARTMENT,
        ("GET", "/api/v1/cases/{case_id}"): {WORKER: DEPARTMENT, COORD: DISTRICT_SCOPE},
        ("POST", "/api/v1/tasks/{task_id}/sign-for"): DEPARTMENT,
        ("POST", "/api/v1/tasks/{task_id}/progress"): DEPARTMENT,
        ("POST", "/api/v1/tasks/{task_id}/co-handling"): DEPARTMENT,
        ("POST", "/api/v1/tasks/{task_id}/resolve"): DEPARTMENT,
        ("POST", "/api/v1/tasks/{task_id}/waive"): DEPARTMENT,
        ("POST", "/api/v1/tasks/{task_id}/return"): DEPARTMENT,
        ("GET", "/api/v1/coordinator/cases"): DISTRICT_SCOPE,
        ("POST", "/api/v1/coordinator/cases/{case_id}/arbitration"): DISTRICT_SCOPE,
        ("POST", "/api/v1/coordinator/cases/{case_id}/reassign"): DISTRICT_SCOPE,
        ("POST", "/api/v1/coordinator/cases/{case_id}/lead"): DISTRICT_SCOPE,
        ("POST", "/api/v1/coordinator/cases/{case_id}/merge"): DISTRICT_SCOPE,
        ("POST", "/api/v1/cases/{case_id}/reveal"): {WORKER: DEPARTMENT, COORD: DISTRICT_SCOPE},
        ("GET", "/api/v1/cases/{case_id}/reveals"): {WORKER: DEPARTMENT, COORD: DISTRICT_SCOPE},
        ("GET", "/api/v1/escalations"): {WORKER: DEPARTMENT, COORD: DISTRICT_SCOPE},
        ("POST", "/api/v1/escalations/{escalation_event_id}/acknowledge"): DEPARTMENT,
    },
    "relief": {
        **COMMON,
        ("GET", "/api/v1/entitlements"): DISTRICT_SCOPE,
        ("GET", "/api/v1/entitlements/{entitlement_id}"): DISTRICT_SCOPE,
        ("POST", "/api/v1/entitlements/{entitlement_id}/approve"): DISTRICT_SCOPE,
        ("POST", "/api/v1/entitlements/{entitlement_id}/reject"): DISTRICT_SCOPE,
        ("POST", "/api/v1/entitlements/{entitlement_id}/cancel"): DISTRICT_SCOPE,
        ("POST", "/api/v1/entitlements/{entitlement_id}/discharge"): DISTRICT_SCOPE,
        ("POST", "/api/v1/entitlements/{entitlement_id}/payments"): DISTRICT_SCOPE,
        ("GET", "/api/v1/cases/{case_id}/ledger"): DISTRICT_SCOPE,
        ("GET", "/api/v1/recipients/{recipient_id}/ledger"): DISTRICT_SCOPE,
        ("POST", "/api/v1/ledger/by-id-card"): DISTRICT_SCOPE,
        ("POST", "/api/v1/registry/import"): DISTRICT_SCOPE,
        ("GET", "/api/v1/registry/{recipient_id}"): DISTRICT_SCOPE,
        ("POST", "/api/v1/runs"): DISTRICT_SCOPE,
        ("POST", "/api/v1/runs/{run_id}/execute"): DISTRICT_SCOPE,
        ("GET", "/api/v1/runs"): DISTRICT_SCOPE,
        ("GET", "/api/v1/runs/{run_id}"): DISTRICT_SCOPE,
        ("GET", "/api/v1/standards"): NONE,  # the published standards of every district
        ("POST", "/api/v1/admin/standards"): NONE,
        ("POST", "/api/v1/entitlements/{entitlement_id}/applicant/phone"): DISTRICT_SCOPE,
        ("GET", "/api/v1/payments/pending"): DISTRICT_SCOPE,
        ("GET", "/api/v1/payments/export"): DISTRICT_SCOPE,
        ("POST", "/api/v1/payments/returns"): DISTRICT_SCOPE,
        ("GET", "/api/v1/registry"): DISTRICT_SCOPE,
        ("GET", "/api/v1/hukou-notices"): DISTRICT_SCOPE,
        ("POST", "/api/v1/hukou-notices/{grant_id}/acknowledge"): DISTRICT_SCOPE,
        ("GET", "/api/v1/standards/rules"): NONE,
        ("POST", "/api/v1/admin/standards/rules"): NONE,
        ("POST", "/api/v1/care/register"): DISTRICT_SCOPE,
        ("GET", "/api/v1/care/register"): DISTRICT_SCOPE,
        ("GET", "/api/v1/care/mine"): PERSON,
        ("GET", "/api/v1/care/register/{entry_id}"): {
            WORKER: PERSON,
            OFFICER: DISTRICT_SCOPE,
            COORD: DISTRICT_SCOPE,
        },
        ("GET", "/api/v1/care/register/{entry_id}/visits"): {
            WORKER: PERSON,
            OFFICER: DISTRICT_SCOPE,
            COORD: DISTRICT_SCOPE,
        },
        ("POST", "/api/v1/care/register/{entry_id}/visits"): {
            WORKER: PERSON,
            OFFICER: DISTRICT_SCOPE,
            COORD: DISTRICT_SCOPE,
        },
        ("POST", "/api/v1/care/register/{entry_id}/worker"): DISTRICT_SCOPE,
    },
    "notify": {
        **COMMON,
        ("GET", "/api/v1/cases"): DISTRICT_SCOPE,
        ("GET", "/api/v1/counts"): DISTRICT_SCOPE,
        ("GET", "/api/v1/overdue"): DISTRICT_SCOPE,
        ("GET", "/api/v1/at-risk"): DISTRICT_SCOPE,
        ("GET", "/api/v1/unassigned"): DISTRICT_SCOPE,
        ("GET", "/api/v1/returned"): DISTRICT_SCOPE,
        ("GET", "/api/v1/rates"): DISTRICT_SCOPE,
        ("GET", "/api/v1/cases/{case_id}"): DISTRICT_SCOPE,
        ("POST", "/api/v1/cases/{case_id}/pause"): {WORKER: DEPARTMENT, COORD: DISTRICT_SCOPE},
        ("POST", "/api/v1/cases/{case_id}/resume"): {WORKER: DEPARTMENT, COORD: DISTRICT_SCOPE},
        ("GET", "/api/v1/notifications"): DISTRICT_SCOPE,  # a district coordinator asks per case
        ("GET", "/api/v1/sla-policy"): NONE,
        ("GET", "/api/v1/reports"): DISTRICT_SCOPE,
        ("GET", "/api/v1/cases/{case_id}/escalation-notice"): DISTRICT_SCOPE,
        ("GET", "/api/v1/calendar"): NONE,
        ("POST", "/api/v1/calendar/{year}"): NONE,
    },
}


@dataclass(frozen=True)
class Probe:
    """One call of a route on the real records. Strings may name a record (`{case}`, `{entitlement}`, …);
    a path parameter names its record unless `path` says otherwise. `shows`: the text a list holds when
    the record is in the caller's scope. `district`: the record's district, when not 渝中区."""

    query: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    files: dict[str, tuple[str, str]] | None = None
    path: dict[str, str] = field(default_factory=dict)
    shows: str | None = None
    refused: tuple[int, ...] = (403, 404)
    district: str = DISTRICT


def P(**kw: Any) -> tuple[Probe, ...]:  # one probe: reads as a table row
    return (Probe(**kw),)


WHY = {"reason": "授权矩阵 | authorization matrix"}
RECORD_OF = {  # the record a path parameter names by default
    "case_id": "case",
    "task_id": "task",
    "entitlement_id": "entitlement",
    "recipient_id": "recipient",
    "entry_id": "entry",
    "run_id": "run",
    "grant_id": "entitlement",
    "escalation_event_id": "escalation",
}
REGISTRY_CSV = "recipient_id,name,id_card,district,area,categories,approved_on,ended_on\n{registry_row}\n"
# In the order they run: a write that changes a record comes after the reads that need it as it was.
PROBES: dict[str, dict[tuple[str, str], tuple[Probe, ...]]] = {
    "hotline": {
        ("GET", "/api/v1/cases/search"): (
            Probe(query={**WHY, "case_id": "{case}"}, shows="{case}"),
            Probe(query={**WHY, "case_id": "{case}", "district": DISTRICT}, shows="{case}"),
        ),
        ("GET", "/api/v1/callbacks/due"): (
            Probe(query={"upcoming": "true"}, shows="{resolved}"),
            Probe(query={"upcoming": "true", "district": DISTRICT}, shows="{resolved}"),
        ),
        ("GET", "/api/v1/cases/{case_id}/slip"): P(),
        ("POST", "/api/v1/help-requests/matches"): P(body={"phone": "{phone}", **WHY}, shows="{case}"),
        ("GET", "/api/v1/cases"): P(query={"phone": "{phone}", **WHY}, shows="{case}"),
        ("GET", "/api/v1/cases/recent"): P(query={"limit": "200"}, shows="{case}"),
        ("GET", "/api/v1/cases/{case_id}"): P(query=WHY),
        ("GET", "/api/v1/cases/{case_id}/status"): P(),
        ("GET", "/api/v1/cases/{case_id}/audit"): P(),
        ("POST", "/api/v1/cases/{case_id}/follow-ups"): P(body={"note": "矩阵复核"}),
        ("POST", "/api/v1/cases/{case_id}/warm-transfers"): P(body={"to": "120"}),
        ("POST", "/api/v1/cases/{case_id}/callbacks"): P(body={"satisfaction": "satisfied"}),  # open: 409
    },
    "notify": {
        ("GET", "/api/v1/cases"): (
            Probe(query={"view": "all"}, shows="{case}"),
            Probe(query={"view": "all", "district": DISTRICT}, shows="{case}"),
        ),
        ("GET", "/api/v1/counts"): P(query={"district": DISTRICT}),
        ("GET", "/api/v1/overdue"): P(query={"district": DISTRICT}),
        ("GET", "/api/v1/at-risk"): P(query={"district": DISTRICT}),
        ("GET", "/api/v1/unassigned"): P(query={"district": DISTRICT}),
        ("GET", "/api/v1/returned"): P(query={"district": DISTRICT}),
        ("GET", "/api/v1/rates"): P(query={"district": DISTRICT}),
        ("GET", "/api/v1/reports"): P(query={"from": "{today}", "to": "{today}", "district": DISTRICT}),
        ("GET", "/api/v1/cases/{case_id}"): P(),
        ("GET", "/api/v1/notifications"): P(query={"case_id": "{case}"}),
        # notify has not fired this escalation itself: the caller in scope is told so (404), not refused.
        ("GET", "/api/v1/cases/{case_id}/escalation-notice"): P(refused=(403,)),
        ("POST", "/api/v1/cases/{case_id}/pause"): P(body={"reason": "waiting_for_caller"}),
        ("POST", "/api/v1/cases/{case_id}/resume"): P(),
    },
    "relief": {
        ("GET", "/api/v1/entitlements"): P(shows="{entitlement}"),
        ("GET", "/api/v1/entitlements/{entitlement_id}"): P(),
        ("POST", "/api/v1/entitlements/{entitlement_id}/approve"): P(body={"note": "矩阵"}),  # paid: 409
        ("POST", "/api/v1/entitlements/{entitlement_id}/reject"): P(body=WHY),
        ("POST", "/api/v1/entitlements/{entitlement_id}/cancel"): P(body=WHY),
        ("POST", "/api/v1/entitlements/{entitlement_id}/discharge"): P(body={"discharged_on": "{today}"}),
        ("POST", "/api/v1/entitlements/{entitlement_id}/payments"): P(
            body={"period": "once", "payment_reference": "{payment}"}
        ),
        ("POST", "/api/v1/entitlements/{entitlement_id}/applicant/phone"): P(body=WHY),
        ("GET", "/api/v1/cases/{case_id}/ledger"): P(shows="{payment}"),
        ("GET", "/api/v1/recipients/{recipient_id}/ledger"): P(shows="{payment}"),
        ("POST", "/api/v1/ledger/by-id-card"): P(body={"id_card": "{id_card}"}, shows="{payment}"),
        ("POST", "/api/v1/registry/import"): P(
            files={"file": ("registry.csv", REGISTRY_CSV)}, shows='"accepted":1', refused=(403,)
        ),
        ("GET", "/api/v1/registry/{recipient_id}"): P(path={"recipient_id": "{registry}"}),
        ("GET", "/api/v1/registry"): (
            Probe(query={"q": "{registry}"}, shows="{registry}"),
            Probe(query={"q": "{registry}", "district": DISTRICT}, shows="{registry}"),
        ),
        ("GET", "/api/v1/standards"): P(query={"district": DISTRICT}),
        ("POST", "/api/v1/runs"): P(
            body={
                "kind": "holiday",
                "month": "{month}",
                "label": "matrix",
                "districts": [DISTRICT],
                "amounts": {"dibao": "100.00"},
            }
        ),
        ("GET", "/api/v1/runs"): P(shows="{run}"),
        ("GET", "/api/v1/runs/{run_id}"): P(),
        ("POST", "/api/v1/runs/{run_id}/execute"): P(),
        ("GET", "/api/v1/payments/pending"): P(shows="{pending}"),
        ("GET", "/api/v1/payments/export"): P(shows="{pending}"),
        ("POST", "/api/v1/payments/returns"): P(
            files={
                "file": (
                    "return.csv",
                    "reference,amount_yuan,status,bank_transaction_id\n{pending},1000.00,paid,TX-M\n",
                )
            },
            shows='"outcome":"paid"',
        ),
        ("GET", "/api/v1/hukou-notices"): (
            Probe(shows="{entitlement}", district=OTHER_DISTRICT),
            Probe(query={"direction": "sent"}, shows="{entitlement}"),
        ),
        ("POST", "/api/v1/hukou-notices/{grant_id}/acknowledge"): P(body={"note": "已知悉"}, district=OTHER_DISTRICT),
        ("GET", "/api/v1/care/register"): (
            Probe(shows="{entry}"),
            Probe(query={"district": DISTRICT}, shows="{entry}"),
        ),
        ("GET", "/api/v1/care/mine"): P(shows="{entry}"),
        ("GET", "/api/v1/care/register/{entry_id}"): P(),
        ("GET", "/api/v1/care/register/{entry_id}/visits"): P(),
        ("POST", "/api/v1/care/register/{entry_id}/visits"): P(
            body={"visited_on": "{today}", "mode": "phone", "outcome": "well"}
        ),
        ("POST", "/api/v1/care/register/{entry_id}/worker"): P(body={"worker": "{worker}"}),
        # Already on the register: the caller in scope is told so (409); another district's is refused first.
        ("POST", "/api/v1/care/register"): P(
            body={"recipient_id": "{registry}", "groups": ["elderly_alone"], "worker": "{worker}"}
        ),
    },
    "router": {
        ("GET", "/api/v1/queue"): P(shows="{task}"),
        ("GET", "/api/v1/cases/{case_id}"): P(),
        ("GET", "/api/v1/coordinator/cases"): P(shows="{case}"),
        ("POST", "/api/v1/cases/{case_id}/reveal"): P(body=WHY),
        ("GET", "/api/v1/cases/{case_id}/reveals"): P(),
        ("GET", "/api/v1/escalations"): P(shows="{escalation}"),
        ("POST", "/api/v1/escalations/{escalation_event_id}/acknowledge"): P(body={"answer": "已督促办理"}),
        # Writes the case in scope refuses for its content (a rule), so the case stays as it is:
        ("POST", "/api/v1/tasks/{task_id}/resolve"): P(body={"outcome": "矩阵"}),  # not signed for yet: 409
        # no such co-handler subtask: 404 to the department in scope, 403 to another
        ("POST", "/api/v1/tasks/{task_id}/waive"): P(body={"co_task_id": "x", "reason": "矩阵"}, refused=(403,)),
        ("POST", "/api/v1/tasks/{task_id}/co-handling"): P(body={"department": "no_such_department"}),
        ("POST", "/api/v1/coordinator/cases/{case_id}/arbitration"): P(
            body={"department": "civil_affairs", "reason": "矩阵"}
        ),
        ("POST", "/api/v1/coordinator/cases/{case_id}/reassign"): P(
            body={"department": "no_such_department", "reason": "矩阵"}
        ),
        ("POST", "/api/v1/coordinator/cases/{case_id}/lead"): P(body={"department": "hrss", "reason": "矩阵"}),
        ("POST", "/api/v1/coordinator/cases/{case_id}/merge"): P(body={"into_case_id": "{case}"}),  # itself
        ("POST", "/api/v1/tasks/{task_id}/sign-for"): P(),
        ("POST", "/api/v1/tasks/{task_id}/progress"): P(body={"note": "矩阵"}),
        ("POST", "/api/v1/tasks/{task_id}/return"): P(body={"reason": "duplicate", "note": "矩阵"}),  # the last
    },
}


# ------------------------------------------------------------------------------- the declarations


def scope_of(rule: ScopeRule, role: str) -> str:
    return rule if isinstance(rule, str) else rule[role]


def scoped_roles(rule: Rule) -> list[str]:
    """The roles whose reach a route's scope is about: those it admits but admin (who sees everything);
    a route for the city coordinator admits a district coordinator for their own district's records."""
    if isinstance(rule, str):  # public, or the Open311 key: no token, no scope
        return []
    if DESK in rule:
        return [WORKER]
    roles = {r for r in rule if r not in (ADMIN, CITY)} | ({COORD} if CITY in rule else set())
    return sorted(roles)


@pytest.mark.unit
@pytest.mark.parametrize("service", SERVICES)
def test_every_route_that_takes_a_token_declares_its_scope_and_how_to_probe_it(service: str) -> None:
    needs_token = {(m, p) for m, p, authenticated, _ in served_routes(service) if authenticated}
    undeclared = sorted(f"{m} {p}" for m, p in needs_token - set(SCOPES[service]))
    assert undeclared == [], f"declare the scope of these {service} routes in SCOPES"
    stale = sorted(f"{m} {p}" for m, p in set(SCOPES[service]) - needs_token)
    assert stale == [], f"SCOPES names {service} routes that no longer take a token (or exist)"
    for (method, path), rule in SCOPES[service].items():
        roles = scoped_roles(RULES[service][(method, path)])
        if isinstance(rule, dict):
            assert sorted(rule) == roles, f"{method} {path}: a scope for each of {roles}"
        scoped = any(scope_of(rule, r) != NONE for r in roles)
        names_a_record = bool(re.search(r"\{(\w+)\}", path)) and set(roles) - {ADMIN}
        if (scoped or names_a_record) and roles:
            assert (method, path) in PROBES[service], f"{method} {path}: say in PROBES how to call it"
    assert set(PROBES[service]) <= set(SCOPES[service])


# ------------------------------------------------------------------------------- the records


@dataclass
class Records:
    values: dict[str, str]

    def fill(self, value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**self.values)
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.fill(v) for v in value)
        return value


def until(probe: Callable[[], Any], what: str, timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := probe():
            return found
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def valid_id_card(seq: int) -> str:
    first17 = f"50010319800101{seq:03d}"
    return first17 + id_card_check_char(first17)


def _take_call(http: httpx.Client, hotline: str, phone: str, id_card: str, **caller: str) -> str:
    call = {
        "caller": {"name": "矩阵", "phone": phone, "id_card": id_card, **caller},
        "place": {"district": DISTRICT, "address": "民族路 1 号"},
        "needs": ["temp_assist_major"],
        "household_status": "low_income",
        "description": "授权矩阵测试",
    }
    taken = http.post(f"{hotline}/api/v1/help-requests", json=call, headers=bearer(token(OP)))
    assert taken.status_code == 201, taken.text
    return str(taken.json()["case_id"])


def _escalate(stack: ServiceSet, case_id: str) -> str:
    """What notify publishes when civil affairs misses its sign-for deadline (the router keeps it)."""
    import asyncio

    now = datetime.now(UTC)
    event = SlaEscalated(
        case_id=case_id,
        occurred_at=now,
        clock="department",
        target="sign_for",
        department="civil_affairs",
        district=DISTRICT,
        due_at=now - timedelta(minutes=30),
        sla_class="standard",
        tier="district_coordinator",
    )

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=stack.kafka)
        await producer.start()
        try:
            topic = stack.namespace + SLA_EVENTS_TOPIC
            await producer.send_and_wait(topic, event.model_dump_json().encode(), key=case_id.encode())
        finally:
            await producer.stop()

    asyncio.run(send())
    return str(event.event_id)


def make_records(stack: ServiceSet) -> Records:
    """The records every probe calls on, each made through the services' own APIs (and one event)."""
    url = {name: stack[name].url for name in SERVICES}
    worker = bearer(token(WORKER, department="civil_affairs", sub="m-worker"))
    officer = bearer(token(OFFICER, sub="m-officer"))
    coordinator = bearer(token(COORD, sub="m-coordinator"))
    phone, id_card = "13812340101", valid_id_card(101)
    tag = uuid.uuid4().hex[:6]
    with httpx.Client(timeout=60) as http:
        case = _take_call(http, url["hotline"], phone, id_card, hukou_district=OTHER_DISTRICT)
        resolved = _take_call(http, url["hotline"], "13812340102", valid_id_card(102))

        def queued() -> dict[str, str] | None:
            rows = http.get(f"{url['router']}/api/v1/queue", headers=worker).json()
            tasks = {t["case_id"]: t["task_id"] for t in rows}
            return tasks if {case, resolved} <= set(tasks) else None

        tasks = until(queued, "both cases in civil affairs' queue")
        done = tasks[resolved]
        assert http.post(f"{url['router']}/api/v1/tasks/{done}/sign-for", headers=worker).status_code == 200
        reply = http.post(f"{url['router']}/api/v1/tasks/{done}/resolve", json={"outcome": "已办结"}, headers=worker)
        assert reply.status_code == 200, reply.text

        entitlement, pending = f"{case}:P5.2c", f"{resolved}:P5.2c"

        def proposed() -> bool:
            listed = http.get(f"{url['relief']}/api/v1/entitlements", headers=officer).text
            return entitlement in listed and pending in listed

        until(proposed, "relief's proposals for both cases")
        for grant in (entitlement, pending):
            reply = http.post(
                f"{url['relief']}/api/v1/entitlements/{grant}/approve", json={"amount_yuan": "1000.00"}, headers=officer
            )
            assert reply.status_code == 200 and reply.json()["status"] == "approved", reply.text
        payment = f"BANK-MATRIX-{tag}"
        paid = http.post(
            f"{url['relief']}/api/v1/entitlements/{entitlement}/payments",
            json={"period": "once", "payment_reference": payment},
            headers=officer,
        )
        assert paid.status_code == 201, paid.text
        recipient = http.get(f"{url['relief']}/api/v1/entitlements/{entitlement}", headers=officer).json()
        registry = f"MATRIX-{tag}"
        registry_row = f"{registry},刘矩阵,{valid_id_card(103)},{DISTRICT},urban,dibao,2020-05-01,"
        files = {"file": ("registry.csv", REGISTRY_CSV.format(registry_row=registry_row))}
        reply = http.post(f"{url['relief']}/api/v1/registry/import", files=files, headers=officer)
        assert reply.status_code == 200 and reply.json()["accepted"] == 1, reply.text
        enrol = {"recipient_id": registry, "groups": ["elderly_alone"], "worker": "m-worker"}
        reply = http.post(f"{url['relief']}/api/v1/care/register", json=enrol, headers=officer)
        assert reply.status_code == 201, reply.text
        entry = reply.json()["id"]
        month = datetime.now(UTC).strftime("%Y-%m")
        run_body = {"kind": "holiday", "month": month, "label": "matrix", "amounts": {"dibao": "100.00"}}
        reply = http.post(f"{url['relief']}/api/v1/runs", json=run_body, headers=coordinator)
        assert reply.status_code == 201, reply.text
        run = reply.json()["_id"]

        until(
            lambda: http.get(f"{url['notify']}/api/v1/cases/{case}", headers=coordinator).status_code == 200,
            "notify's view of the case",
        )
        escalation = _escalate(stack, case)
        until(
            lambda: escalation in http.get(f"{url['router']}/api/v1/escalations", headers=worker).text,
            "the escalation on civil affairs' desk",
        )
    return Records(
        {
            "case": case,
            "task": tasks[case],
            "resolved": resolved,
            "phone": phone,
            "id_card": id_card,
            "entitlement": entitlement,
            "pending": pending,
            "payment": payment,
            "recipient": recipient["recipient_id"],
            "registry": registry,
            "registry_row": registry_row,
            "entry": entry,
            "worker": "m-worker",
            "run": run,
            "escalation": escalation,
            "month": month,
            "today": datetime.now(UTC).date().isoformat(),
        }
    )


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, mongodb_url: str) -> Iterator[ServiceSet]:
    with (
        tempfile.TemporaryDirectory() as tmp,
        ServiceSet(kafka_bootstrap, mongodb_url, SERVICES, Path(tmp), isolated_topics=True) as services,
    ):
        yield services


# ------------------------------------------------------------------------------- the checks


def callers(role: str, scope: str, district: str, record: Records) -> list[tuple[str, str, bool]]:
    """(who, token, in scope) for one role and scope, around a record of `district`."""
    other = OTHER_DISTRICT if district == DISTRICT else DISTRICT
    department = "civil_affairs" if role == WORKER else None
    if scope == PERSON:
        named = record.values["worker"]
        return [
            (f"{role} named on the record", token(role, district=district, department=department, sub=named), True),
            (f"{role} not named on it", token(role, district=district, department=department, sub="m-someone"), False),
        ]
    own = (f"{role} of {district}", token(role, district=district, department=department), True)
    found = [own, (f"{role} of {other}", token(role, district=other, department=department), scope == NONE)]
    if scope == DEPARTMENT:
        found.append((f"{role} of hrss, {district}", token(role, district=district, department="hrss"), False))
    if role == COORD and scope == DISTRICT_SCOPE:
        found.append(("coordinator (city)", token(COORD, district="city"), True))
    return found


def call(
    http: httpx.Client, base: str, method: str, path: str, probe: Probe, record: Records, bearer_token: str
) -> httpx.Response:
    values = {name: record.values[RECORD_OF.get(name, name)] for name in re.findall(r"\{(\w+)\}", path)}
    values |= record.fill(probe.path)
    url = base + re.sub(r"\{(\w+)\}", lambda m: values[m.group(1)], path)
    files = {k: (name, record.fill(text).encode()) for k, (name, text) in (probe.files or {}).items()} or None
    return http.request(
        method,
        url,
        params=record.fill(probe.query),
        json=record.fill(probe.body) if probe.body is not None else None,
        files=files,
        headers=bearer(bearer_token),
    )


def judged(reply: httpx.Response, probe: Probe, record: Records, in_scope: bool) -> str | None:
    """What is wrong with the reply, or None."""
    status = reply.status_code
    if probe.shows is not None:
        seen = status < 300 and record.fill(probe.shows) in reply.text.replace(", ", ",").replace(": ", ":")
        if in_scope and not seen:
            return f"{status}, the record not shown"
        if not in_scope and seen:
            return f"{status}, another scope's record shown"
        if not in_scope and not (status < 300 or status in probe.refused):
            return f"{status}, neither refused nor filtered"
        return None
    if in_scope and (status == 401 or status in probe.refused):
        return f"{status}, refused"
    if not in_scope and status not in probe.refused:
        return f"{status}, not refused"
    return None


def test_every_scoped_route_answers_its_own_scope_and_refuses_the_others(stack: ServiceSet) -> None:
    record = make_records(stack)
    wrong: list[str] = []
    checked = 0
    with httpx.Client(timeout=60) as http:
        for service in ("hotline", "notify", "relief", "router"):
            base = stack[service].url
            for (method, path), probes in PROBES[service].items():
                rule = SCOPES[service][(method, path)]
                for probe in probes:
                    for role in scoped_roles(RULES[service][(method, path)]):
                        scope = scope_of(rule, role)
                        # Refused callers first: what the ones in scope write comes after.
                        for who, bearer_token, in_scope in sorted(
                            callers(role, scope, probe.district, record), key=lambda c: c[2]
                        ):
                            reply = call(http, base, method, path, probe, record, bearer_token)
                            checked += 1
                            if problem := judged(reply, probe, record, in_scope):
                                wrong.append(
                                    f"{service} {method} {path} {probe.query or ''} as {who} ({scope}): {problem}: "
                                    f"{reply.text[:200]}"
                                )
    print(f"scope checks: {checked}")
    assert wrong == []
