"""Every route of every service says what it answers: OpenAPI shows a real schema, never an empty one."""

from __future__ import annotations

import importlib
from typing import Any

import pytest

pytestmark = pytest.mark.unit

SERVICES = ("hotline", "router", "relief", "notify", "frontdoor")


def _undescribed(spec: dict[str, Any]) -> list[str]:
    missing = []
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            described = False
            for code, response in operation.get("responses", {}).items():
                if code == "204":
                    described = True
                elif code.startswith("2"):
                    described |= any(
                        media.get("schema") not in (None, {}) for media in response.get("content", {}).values()
                    )
            if not described:
                missing.append(f"{method.upper()} {path}")
    return missing


@pytest.mark.parametrize("service", SERVICES)
def test_every_route_declares_what_it_answers(service: str) -> None:
    app = importlib.import_module(f"services.{service}.app").create_app()
    spec = app.openapi()
    assert len(spec["paths"]) > 3  # the check sees the service's routes, not an empty app
    assert _undescribed(spec) == []


@pytest.mark.parametrize("service", ("hotline", "router", "relief", "notify"))
def test_every_route_declares_the_error_statuses_it_can_answer_with_the_real_error_body(service: str) -> None:
    """The shared mechanism (common.openapi): 401/403/503 where a token is needed, 404 with a path parameter,
    409 on a change, 413 with a body, 422 with any input, all with the project's error body."""
    spec = importlib.import_module(f"services.{service}.app").create_app().openapi()
    assert "HTTPValidationError" not in str(spec)  # FastAPI's 422 shape is not what the services answer
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if operation.get("security"):
                assert {"401", "403", "503"} <= codes, f"{method} {path}"
            if "{" in path:
                assert "404" in codes, f"{method} {path}"
            if "requestBody" in operation:
                assert {"413", "422"} <= codes, f"{method} {path}"
            for code in codes - {"200", "201", "202", "204"}:
                if path.startswith("/open311/"):  # GeoReport v2 declares its own error bodies
                    continue
                schema = operation["responses"][code]["content"]["application/json"]["schema"]
                assert schema.get("$ref") == "#/components/schemas/ErrorReply" or code == "503", f"{method} {path}"


def test_the_routes_rules_are_derived_from_the_route_itself() -> None:
    app = importlib.import_module("services.router.app").create_app()
    responses = app.openapi()["paths"]["/api/v1/tasks/{task_id}/resolve"]["post"]["responses"]
    assert set(responses) == {"200", "401", "403", "404", "409", "413", "422", "503"}
    assert set(app.openapi()["paths"]["/api/v1/reference"]["get"]["responses"]) == {"200"}


async def test_a_body_that_cannot_be_parsed_is_a_422_field_error_not_a_400() -> None:
    import httpx

    from common.auth import issue_token

    app = importlib.import_module("services.router.app").create_app()
    token = issue_token(app.state.settings, sub="w", role="dept_worker", department="civil_affairs", district="500103")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://router") as http:
        reply = await http.post(
            "/api/v1/tasks/CQ-20260215-000001-T1/resolve",
            content=b"\xff\xfe{",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
    assert reply.status_code == 422
    assert reply.json()["errors"][0]["field"] == "body"
