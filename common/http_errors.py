"""HTTP error bodies an operator can read: field errors and domain errors, zh first, en too; and the
limit on what a request may send before anything reads it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any, TypeVar

import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pymongo.errors import PyMongoError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from common.errors import DomainError, Unavailable, field_errors
from common.store import store_unavailable

log = structlog.get_logger("http")

STORE_RETRY_AFTER_S = 2  # what a reply says while the store is unreachable

# A reply names at most this many field errors, and says how many there were: a body with 45,000 unknown
# keys once produced a 7.4 MB reply listing every one.
MAX_FIELD_ERRORS = 50

T = TypeVar("T")


def validation_reply(errors: list[dict[str, Any]]) -> dict[str, Any]:
    """The 422 body: the first `MAX_FIELD_ERRORS` field errors and the count of all of them."""
    shown = field_errors(errors[:MAX_FIELD_ERRORS])
    body: dict[str, Any] = {
        "message_zh": "提交内容有误，请检查以下字段",
        "message_en": "The request has invalid fields",
        "errors": shown,
        "error_count": len(errors),
    }
    if len(errors) > len(shown):
        body["message_zh"] += f"（共 {len(errors)} 处，仅列出前 {len(shown)} 处）"
        body["message_en"] += f" ({len(errors)} in all; the first {len(shown)} are listed)"
    return body


def field_checked(loc: tuple[str, ...], check: Callable[[], T]) -> T:
    """Run a check of one field that needs more than the body (e.g. the stored case): its `ValueError`
    ("中文原因 | English reason") becomes the same 422 as a schema's field error, under `loc`."""
    try:
        return check()
    except ValueError as exc:
        raise RequestValidationError([{"loc": loc, "msg": str(exc), "type": "value_error"}]) from None


class BodyLimit:
    """Refuse a request body larger than `max_bytes` with 413 before the route reads it whole: at once
    when its Content-Length says so, else as soon as the bytes received pass the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        received = 0

        def count(chunk: bytes) -> None:
            nonlocal received
            received += len(chunk)
            if received > self.max_bytes:
                raise _TooLarge(self.max_bytes)

        await _reading_guarded(self.app, scope, receive, send, count, _TooLarge, self._refuse)

    async def _refuse(self, send: Send) -> None:
        await _send_json(send, 413, {"detail": _TooLarge(self.max_bytes).detail})


async def _send_json(send: Send, status: int, payload: dict[str, Any]) -> None:
    """A whole JSON reply sent from a middleware, before or instead of the route's."""
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _reading_guarded(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    inspect: Callable[[bytes], None],
    refused: type[HTTPException],
    refuse: Callable[[Send], Awaitable[None]],
) -> None:
    """Run the app with every body chunk it reads passed to `inspect` first. When `inspect` raises
    `refused`, the reply is `refuse`'s, unless the app has begun its own. The exception is an
    HTTPException: FastAPI lets one through its body parsing (anything else there would become a 400),
    so a route reading the body is refused the same way."""
    replied = False

    async def checked() -> Message:
        message = await receive()
        if message["type"] == "http.request":
            inspect(message.get("body", b""))
        return message

    async def sending(message: Message) -> None:
        nonlocal replied
        replied = True
        await send(message)

    try:
        await app(scope, checked, sending)
    except refused:
        if not replied:
            await refuse(send)


NUL_REASON = "文本中不能含有空字符（NUL） | text may not contain the NUL character"


class NoNulText:
    """Refuse text with a NUL character (U+0000) in the path, the query or a JSON body with a 422 naming
    where it was: no field of this system takes one, and the store (FerretDB on PostgreSQL) cannot keep
    it, so it would otherwise fail as a server error wherever a route stores or looks up the text.
    Files (multipart, e.g. an xlsx) are binary and pass."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        if b"%00" in raw_path or "\x00" in scope["path"]:
            await _refuse_nul(send, "url_path")
            return
        if b"%00" in scope.get("query_string", b""):
            await _refuse_nul(send, "query_string")
            return
        content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
        if b"json" not in content_type:
            await self.app(scope, receive, send)
            return
        tail = b""

        def scan(chunk: bytes) -> None:
            nonlocal tail
            seen = tail + chunk  # "\u0000" may be split between two chunks
            if b"\\u0000" in seen or b"\x00" in seen:
                raise _NulInBody
            tail = seen[-6:]

        await _reading_guarded(self.app, scope, receive, send, scan, _NulInBody, partial(_refuse_nul, where="body"))


class _NulInBody(HTTPException):
    def __init__(self) -> None:
        super().__init__(422)


def _nul_reply(where: str) -> dict[str, Any]:
    return validation_reply([{"loc": (where,), "msg": NUL_REASON, "type": "value_error"}])


async def _refuse_nul(send: Send, where: str) -> None:
    await _send_json(send, 422, _nul_reply(where))


class _TooLarge(HTTPException):
    """Raised from `receive`: FastAPI lets an HTTPException through its body parsing (anything else there
    would become a 400), so a route reading the body answers 413 too."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(
            413,
            detail={
                "code": "body_too_large",
                "message_zh": f"提交内容过大：上限 {max_bytes} 字节",
                "message_en": f"request body too large: at most {max_bytes} bytes",
            },
        )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(status_code=422, content=validation_reply(list(exc.errors())))

    @app.exception_handler(PyMongoError)
    async def _store_unavailable(_: Request, exc: PyMongoError) -> JSONResponse:
        # The store is unreachable (restarting, failing over, its backend gone): try again shortly, not
        # "server error". Any other store error is a server error, said in the same shape.
        if not store_unavailable(exc):
            log.error(
                "store error answered as a server error",
                error_type=type(exc).__name__,
                code=getattr(exc, "code", None),
                error=str(exc)[:300],
            )
            body = {"code": "internal_error", "message_zh": "服务器内部错误", "message_en": "Internal server error"}
            return JSONResponse(status_code=500, content=body)
        body = {
            "code": "store_unavailable",
            "message_zh": "数据存储暂时不可用，请稍后重试",
            "message_en": "The store is unavailable for the moment; try again shortly",
        }
        return JSONResponse(status_code=503, content=body, headers={"Retry-After": str(STORE_RETRY_AFTER_S)})

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if isinstance(exc, _NulInBody):  # raised while the route read its body (NoNulText)
            return JSONResponse(status_code=422, content=_nul_reply("body"))
        if exc.status_code == 400:  # a body FastAPI cannot even parse (bytes that are not JSON or a form)
            reason = "请求内容无法解析 | the request body cannot be parsed"
            return JSONResponse(
                status_code=422,
                content=validation_reply([{"loc": ("body",), "msg": reason, "type": "body_unparsable"}]),
            )
        return await http_exception_handler(request, exc)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        body: dict[str, Any] = {"code": exc.code, "message_zh": exc.message_zh, "message_en": exc.message_en}
        if exc.field:
            body["field"] = exc.field
        headers = {"Retry-After": str(exc.retry_after_s)} if isinstance(exc, Unavailable) else None
        return JSONResponse(status_code=exc.status, content=body, headers=headers)
