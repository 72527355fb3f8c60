"""What a request may send: bodies over the limit refused with 413 before they are read whole, and
field-error replies capped (the first errors and a count), so hostile input cannot make huge replies."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict

from common.http_errors import MAX_FIELD_ERRORS, BodyLimit, install_error_handlers

pytestmark = pytest.mark.unit

LIMIT = 2048


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str


def app_with_limit() -> tuple[FastAPI, list[int]]:
    app = FastAPI()
    read: list[int] = []

    @app.post("/things")
    async def things(thing: Strict) -> dict[str, str]:
        read.append(1)
        return {"name": thing.name}

    install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=LIMIT)
    return app, read


def client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_a_body_declared_too_large_is_refused_before_it_is_read() -> None:
    app, read = app_with_limit()
    async with client(app) as http:
        reply = await http.post("/things", content=b"x" * (LIMIT + 1), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and reply.json()["detail"]["code"] == "body_too_large"
    assert "上限" in reply.json()["detail"]["message_zh"] and read == []


async def test_a_streamed_body_is_refused_once_it_passes_the_limit() -> None:
    app, read = app_with_limit()
    sent: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(50):
            sent.append(1)
            yield b'{"name": "' + b"x" * 500

    async with client(app) as http:
        reply = await http.post("/things", content=chunks(), headers={"content-type": "application/json"})
    assert reply.status_code == 413 and read == []
    assert reply.json()["detail"]["code"] == "body_too_large"


async def test_a_body_within_the_limit_goes_through_and_malformed_json_is_a_422() -> None:
    app, read = app_with_limit()
    async with client(app) as http:
        ok = await http.post("/things", json={"name": "李四"})
        bad = await http.post("/things", content=b'{"name": ', headers={"content-type": "application/json"})
    assert ok.status_code == 200 and read == [1]
    assert bad.status_code == 422 and bad.json()["errors"][0]["reason_zh"] == "请求不是有效的 JSON"


async def test_a_reply_lists_the_first_field_errors_and_counts_them_all() -> None:
    app, _ = app_with_limit()
    unknown = {f"k{i}": i for i in range(200)}
    async with client(app) as http:
        reply = await http.post("/things", json={"name": "x", **unknown})
    body = reply.json()
    assert reply.status_code == 422 and body["error_count"] == 200
    assert len(body["errors"]) == MAX_FIELD_ERRORS and "200" in body["message_en"]


async def test_an_unreachable_store_is_a_503_with_retry_after_not_a_server_error() -> None:
    from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError

    from common.errors import Unavailable

    app = FastAPI()

    @app.get("/down")
    async def down() -> None:
        raise ServerSelectionTimeoutError("127.0.0.1:27017: connection refused")

    @app.get("/failing-over")
    async def failing_over() -> None:
        raise AutoReconnect("primary stepped down")

    @app.get("/backend-gone")
    async def backend_gone() -> None:  # FerretDB while its PostgreSQL restarts
        raise OperationFailure(
            "[msg_insert.go:168] FATAL: terminating connection due to unexpected postmaster exit (SQLSTATE 57P01)", 1
        )

    @app.get("/cut-off")
    async def cut_off() -> None:  # FerretDB when PostgreSQL dies in the middle of a query
        raise OperationFailure("[msg_find.go:344] [collection.go:109 postgresql.(*collection).Query] unexpected EOF", 1)

    @app.get("/broken")
    async def broken() -> None:
        raise OperationFailure("unknown operator: $frobnicate", 2)

    @app.get("/busy")
    async def busy() -> None:
        raise Unavailable("忙", "busy", retry_after_s=3, code="intake_busy")

    install_error_handlers(app)
    async with client(app) as http:
        for path in ("/down", "/failing-over", "/backend-gone", "/cut-off"):
            reply = await http.get(path)
            assert reply.status_code == 503 and reply.headers["Retry-After"] == "2"
            assert reply.json()["code"] == "store_unavailable" and reply.json()["message_zh"]
        broken_reply = await http.get("/broken")
        assert broken_reply.status_code == 500 and broken_reply.json()["code"] == "internal_error"
        busy_reply = await http.get("/busy")
        assert busy_reply.status_code == 503 and busy_reply.headers["Retry-After"] == "3"
        assert busy_reply.json()["code"] == "intake_busy"


async def test_text_with_a_nul_character_is_refused_by_where_it_is_never_a_server_error() -> None:
    """The store cannot keep U+0000; every service refuses it in the path, the query or a JSON body."""
    import importlib

    import httpx

    from common.auth import issue_token

    app = importlib.import_module("services.relief.app").create_app()
    token = issue_token(app.state.settings, sub="r", role="relief_officer", district="500103")
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://relief") as http:
        query = await http.get("/api/v1/entitlements", params={"case_id": "\x00w"}, headers=headers)
        path = await http.get("/api/v1/entitlements/a%00b", headers=headers)
        body = await http.post(
            "/api/v1/entitlements/x/reject",
            content=b'{"reason": "a\\u0000b"}',
            headers=headers | {"Content-Type": "application/json"},
        )
    for reply, where in [(query, "query_string"), (path, "url_path"), (body, "body")]:
        assert reply.status_code == 422, (where, reply.text)
        (error,) = reply.json()["errors"]
        assert error["field"] == where and "NUL" in error["reason_en"]
