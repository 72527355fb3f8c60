"""HTTP error bodies an operator can read: field errors and domain errors, zh first, en too."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from common.errors import DomainError, field_errors


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse(
            status_code=422,
            content={
                "message_zh": "提交内容有误，请检查以下字段",
                "message_en": "The request has invalid fields",
                "errors": field_errors(list(exc.errors())),
            },
        )

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        body: dict[str, Any] = {"code": exc.code, "message_zh": exc.message_zh, "message_en": exc.message_en}
        if exc.field:
            body["field"] = exc.field
        return JSONResponse(status_code=exc.status, content=body)
