"""A schema-driven fuzzer: schemathesis generates requests from each service's own OpenAPI (valid ones
and invalid ones), sends them to the services started as processes on the real Kafka and store, with
the token of a role drawn for each request (every role, none, and bad ones; at the front door, the access
tokens of its sign-in sessions, one per development account), and checks every reply:
no 5xx, no status the OpenAPI does not declare for the route, no body that breaks its declared schema.

`python -m tests.fuzz [--requests N] [--seed S] [service ...]` (`make fuzz`), after `source`-ing the
infrastructure's addresses (KAFKA_BOOTSTRAP_SERVERS, MONGODB_URL) as `make fuzz` does.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from common.auth import issue_token
from common.settings import ServiceSettings
from services.frontdoor.dev_accounts import DEV_PASSWORD
from tests.support.processes import ServiceSet

SERVICES = ("hotline", "router", "relief", "notify")
FRONT_DOOR = "frontdoor"  # sign-in, the admin's accounts API; its tokens are its sign-in sessions'
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
DISTRICT, OTHER_DISTRICT = "500103", "500106"


class _TokenSettings(ServiceSettings):
    service_name: str = "fuzz"


def tokens() -> dict[str, str | None]:
    """A valid token of every role (own district, another district, the city), and bad ones."""
    s = _TokenSettings()
    wrong = _TokenSettings(jwt_secret="another-secret-of-somebody-else-0123456789abcdef")
    return {
        "operator": issue_token(s, sub="fz-op", role="operator", district=DISTRICT),
        "dept_worker": issue_token(s, sub="fz-w", role="dept_worker", department="civil_affairs", district=DISTRICT),
        "dept_worker_other": issue_token(
            s, sub="fz-w2", role="dept_worker", department="hrss", district=OTHER_DISTRICT
        ),
        "relief_officer": issue_token(s, sub="fz-ro", role="relief_officer", district=DISTRICT),
        "coordinator": issue_token(s, sub="fz-co", role="coordinator", district=DISTRICT),
        "coordinator_city": issue_token(s, sub="fz-cc", role="coordinator", district="city"),
        "admin": issue_token(s, sub="fz-ad", role="admin", district="city"),
        "none": None,
        "wrong_signature": issue_token(wrong, sub="fz-x", role="admin", district="city"),
        "expired": issue_token(s, sub="fz-e", role="admin", district="city", now=datetime.now(UTC) - timedelta(days=2)),
    }


@dataclass
class Tally:
    service: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0

    def line(self) -> str:
        codes = " ".join(f"{c}:{n}" for c, n in sorted(self.statuses.items()))
        return (
            f"{self.service:8} requests {self.requests:6}  failures {sum(self.failures.values()):4}  "
            f"({self.seconds:.0f} s)  statuses {codes}"
        )


def _failure_key(exc: BaseException) -> list[str]:
    inner = getattr(exc, "exceptions", None) or [exc]
    return [f"{type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''}" for e in inner]


def session_tokens(front_door: str) -> dict[str, str | None]:
    """An access token of a sign-in session of every development account (the front door's own tokens),
    a services' token that names no session (not the front door's), none, and bad ones."""
    found: dict[str, str | None] = {}
    for username in ("operator", "worker", "relief", "coordinator", "admin"):
        reply = httpx.post(
            f"{front_door}/auth/token", json={"username": username, "password": DEV_PASSWORD}, timeout=30
        )
        reply.raise_for_status()
        found[username] = reply.json()["access_token"]
    others = tokens()
    found |= {"no_session": others["admin"]} | {k: others[k] for k in ("none", "wrong_signature", "expired")}
    return found


def fuzz(name: str, url: str, requests: int, chosen_seed: int, roles: dict[str, str | None]) -> Tally:
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    cases = st.one_of(
        schema.as_strategy(generation_mode=GenerationMode.POSITIVE),
        schema.as_strategy(generation_mode=GenerationMode.NEGATIVE),
    )
    tally = Tally(name)
    session = httpx.Client(timeout=30)

    @seed(chosen_seed)
    @settings(
        max_examples=requests,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, role=st.sampled_from(sorted(roles)))
    def run(case: Any, role: str) -> None:
        token = roles[role]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            response = case.call(base_url=url, headers=headers, timeout=30)
        except Exception as exc:  # noqa: BLE001 - a request the transport refuses is counted, not fatal
            tally.failures[f"transport {type(exc).__name__}"] += 1
            return
        tally.requests += 1
        tally.statuses[response.status_code] += 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every failure is counted, the run goes on
            for key in _failure_key(exc):
                label = f"{case.method} {case.operation.path} -> {response.status_code}: {key}"
                tally.failures[label] += 1
                tally.examples.setdefault(label, f"role={role} {case.as_curl_command()}"[:600])

    started = time.perf_counter()
    run()
    tally.seconds = time.perf_counter() - started
    session.close()
    return tally


def seed_data(url: str) -> None:
    """A few real cases, so routes that name one find something (the other services hear of them)."""
    token = tokens()["operator"]
    for n in range(5):
        body = {
            "caller": {"name": f"测试{n}", "phone": f"1381234{n:04d}"},
            "place": {"district": DISTRICT, "address": f"民族路 {n} 号"},
            "needs": ["temp_assist_major"],
            "household_status": "low_income",
            "description": "模糊测试的种子案件",
        }
        httpx.post(f"{url}/api/v1/help-requests", json=body, headers={"Authorization": f"Bearer {token}"}, timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fuzz every service from its OpenAPI.")
    parser.add_argument("services", nargs="*", default=[*SERVICES, FRONT_DOOR])
    parser.add_argument("--requests", type=int, default=int(os.environ.get("FUZZ_REQUESTS", "5000")))
    parser.add_argument("--seed", type=int, default=int(os.environ.get("FUZZ_SEED", "20261202")))
    args = parser.parse_args(argv)
    kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    mongodb = os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27017/")
    tallies = []
    with tempfile.TemporaryDirectory() as tmp:
        stack = ServiceSet(kafka, mongodb, (*SERVICES, FRONT_DOOR), Path(tmp), isolated_topics=True)
        door = stack[FRONT_DOOR]
        door.env.update({f"FRONTDOOR_{name.upper()}_URL": stack[name].url for name in SERVICES})
        door.env["FRONTDOOR_ENVIRONMENT"] = "development"  # its development accounts, one per role
        with stack:
            tallies = fuzz_all(stack, args.services, args.requests, args.seed)
    print("\nservice  requests  failures")
    for t in tallies:
        print(f"{t.service:8} {t.requests:8}  {sum(t.failures.values()):8}")
    return 1 if any(t.failures for t in tallies) else 0


def fuzz_all(stack: ServiceSet, names: list[str], requests: int, chosen_seed: int) -> list[Tally]:
    seed_data(stack["hotline"].url)
    tallies = []
    for name in names:
        roles = session_tokens(stack[FRONT_DOOR].url) if name == FRONT_DOOR else tokens()
        tally = fuzz(name, stack[name].url, requests, chosen_seed, roles)
        tallies.append(tally)
        print(tally.line(), flush=True)
        for label, count in tally.failures.most_common(30):
            print(f"    {count:5} x {label}\n          {tally.examples.get(label, '')}", flush=True)
    return tallies
