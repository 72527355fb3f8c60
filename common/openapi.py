"""Every route's OpenAPI says which error statuses it can answer, with the bodies the error handlers
(`common.http_errors`) really send, derived from the route itself, so no route declares them by hand:

- 401 and 403: the route takes a principal (a dependency marked `common.auth.authenticates` among its
  dependencies: `common.auth.current_principal`, the front door's session);
  503 too (the identity provider's keys may be unreachable);
- 404: the route has a path parameter or a principal (what it names, or what it reads, may not exist);
- 409: a route that changes something (not GET/HEAD) and takes a principal (a rule said no);
- 413: the route reads a body (`common.http_errors.BodyLimit`);
- 422: the route takes any parameter or body (the project's field-error shape, not FastAPI's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import BaseModel, ConfigDict, Field


class FieldErrorOut(BaseModel):
    field: str
    reason_zh: str
    reason_en: str
    type: str | None = None


class ErrorReply(BaseModel):
    """Every error body: a rule's (`code`, messages, `field`), the field errors of a 422 (`errors`,
    `error_count`), or an HTTP error's `detail` (401, 403, 413, 503)."""

    model_config = ConfigDict(extra="allow")

    code: str | None = None
    message_zh: str | None = None
    message_en: str | None = None
    field: str | None = None
    errors: list[FieldErrorOut] | None = Field(default=None, description="422: each bad field, the first 50")
    error_count: int | None = Field(default=None, description="422: how many field errors there were")
    detail: Any = None


DESCRIPTIONS = {
    "401": "Missing, invalid or expired token / 缺少或无效的登录凭证",
    "403": "The role or scope does not allow it / 无权访问",
    "404": "Not found / 不存在",
    "409": "A rule or the current state does not allow it / 当前状态不允许",
    "413": "Request body too large / 提交内容过大",
    "422": "Invalid fields, each named with the reason / 字段有误",
    "503": "A dependency is unavailable; try again / 暂时不可用",
}


@dataclass(frozen=True)
class ApiRoute:
    """One API operation of an app, its included routers resolved (their prefixes and dependencies)."""

    path: str
    methods: frozenset[str]
    dependant: Dependant
    has_body: bool
    include_in_schema: bool
    endpoint: Any


def api_routes(app: FastAPI) -> list[ApiRoute]:
    """Every API route of the app (not mounts, not plain Starlette routes), as served."""
    out = []
    for context in iter_route_contexts(app.routes):
        original = context.original_route
        if not isinstance(original, APIRoute):
            continue
        dependant = getattr(context, "dependant", None) or original.dependant
        out.append(
            ApiRoute(
                path=context.path_format or original.path_format,
                methods=frozenset(context.methods or original.methods or ()),
                dependant=dependant,
                has_body=getattr(context, "body_field", original.body_field) is not None,
                include_in_schema=bool(getattr(context, "include_in_schema", original.include_in_schema)),
                endpoint=original.endpoint,
            )
        )
    return out


def _calls(dependant: Dependant) -> set[Any]:
    found = {dependant.call}
    for sub in dependant.dependencies:
        found |= _calls(sub)
    return found


def authenticated(route: ApiRoute) -> bool:
    """The route takes a principal (a bearer token, or the front door's session, is needed): one of its
    dependencies is marked `common.auth.authenticates`."""
    from common.auth import AUTHENTICATORS

    return bool(AUTHENTICATORS & _calls(route.dependant))


def error_statuses(route: ApiRoute) -> list[str]:
    """The error statuses a route can answer (see the module's docstring)."""
    dependant = route.dependant
    params = dependant.path_params or dependant.query_params or dependant.header_params or dependant.cookie_params
    has_body = route.has_body
    codes = set()
    if authenticated(route):
        codes |= {"401", "403", "404", "503"}
        if route.methods - {"GET", "HEAD"}:
            codes.add("409")
    if dependant.path_params:
        codes.add("404")
    if has_body:
        codes.add("413")
    if params or has_body:
        codes.add("422")
    return sorted(codes)


def declare_error_responses(app: FastAPI) -> None:
    """Make `app.openapi()` declare each route's error statuses with `ErrorReply` as their body."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            openapi_version=app.openapi_version,
            description=app.description,
            routes=app.routes,
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for name, schema in (
            ErrorReply.model_json_schema(ref_template="#/components/schemas/{model}").pop("$defs", {}).items()
        ):
            schemas[name] = schema
        schemas["ErrorReply"] = ErrorReply.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas["ErrorReply"].pop("$defs", None)
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        reply = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorReply"}}}
        for route in api_routes(app):
            if not route.include_in_schema:
                continue
            operations = spec["paths"].get(route.path, {})
            for method in route.methods:
                operation = operations.get(method.lower())
                if operation is None:
                    continue
                responses = operation.setdefault("responses", {})
                for code in error_statuses(route):
                    declared = responses.get(code)
                    if declared is None or code == "422":
                        responses[code] = {"description": DESCRIPTIONS[code], "content": reply}
                    elif "content" not in declared:
                        declared["content"] = reply
        app.openapi_schema = spec
        return spec

    app.openapi = openapi  # type: ignore[method-assign]
