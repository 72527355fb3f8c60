"""`/<service>/...` to the service, streamed both ways (httpx), so the pages work from one origin.

A browser's request goes on with the access token of its session in place of the cookie; a request
without a cookie goes on as it came (a machine's own bearer token, or the services' public reads)."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.background import BackgroundTask

from services.frontdoor.accounts import SessionEnded
from services.frontdoor.sessions import UNSAFE, FrontDoor, browser_session, clear_cookie, get_frontdoor, same_origin

log = structlog.get_logger("frontdoor.proxy")

# Hop-by-hop headers (RFC 9110 7.6.1) belong to one connection, not to the message.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
NOT_FORWARDED = HOP_BY_HOP | {"host", "cookie"}
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def _refused(frontdoor: FrontDoor, status: int, zh: str, en: str, code: str) -> JSONResponse:
    response = JSONResponse({"code": code, "message_zh": zh, "message_en": en}, status_code=status)
    if status == 401:
        clear_cookie(response, frontdoor)
    return response


def sign_in_first(frontdoor: FrontDoor, page: str, *, ended: bool = False) -> RedirectResponse:
    response = RedirectResponse(f"/?next={quote(page)}" + ("&ended=1" if ended else ""), status_code=303)
    if ended:
        clear_cookie(response, frontdoor)
    return response


async def forward(request: Request, service: str, path: str) -> Response:
    frontdoor = await get_frontdoor(request)
    base = frontdoor.settings.upstreams()[service]
    is_page = path == "" and request.method in ("GET", "HEAD")
    try:
        session = await browser_session(request, frontdoor)
    except SessionEnded as ended:
        if is_page:
            return sign_in_first(frontdoor, f"/{service}/", ended=True)
        return _refused(frontdoor, 401, ended.message_zh, ended.message_en, ended.code)
    if session is None and is_page:
        return sign_in_first(frontdoor, f"/{service}/")
    headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in NOT_FORWARDED]
    if session is not None:
        if request.method in UNSAFE and not same_origin(request):
            return _refused(frontdoor, 403, "请从本系统页面操作", "cross-origin request refused", "forbidden")
        headers = [(k, v) for k, v in headers if k.lower() != b"authorization"]
        headers.append((b"authorization", f"Bearer {frontdoor.forwarded_token(session)}".encode()))
    headers += [
        (b"x-forwarded-prefix", f"/{service}".encode()),
        (b"x-forwarded-host", request.headers.get("host", "").encode("latin-1")),
    ]
    url = httpx.URL(f"{base.rstrip('/')}/{path}", query=request.url.query.encode("latin-1"))
    upstream = frontdoor.http.build_request(request.method, url, headers=headers, content=request.stream())
    try:
        reply = await frontdoor.http.send(upstream, stream=True)
    except httpx.TimeoutException:
        log.warning("service did not answer in time", service=service, path=path)
        return _refused(
            frontdoor, 504, "服务响应超时，请稍后重试", f"{service} did not answer in time", "upstream_timeout"
        )
    except httpx.TransportError as exc:
        log.warning("service unreachable", service=service, error=repr(exc))
        return _refused(frontdoor, 502, "无法连接服务，请稍后重试", f"{service} is unreachable", "upstream_unreachable")
    response = StreamingResponse(
        reply.aiter_raw(), status_code=reply.status_code, background=BackgroundTask(reply.aclose)
    )
    response.raw_headers = [
        (k.encode("latin-1"), v.encode("latin-1"))
        for k, v in reply.headers.multi_items()
        if k.lower() not in HOP_BY_HOP
    ]
    if is_page:
        # The page is the front door's now: never cached, so a signed-out browser cannot show it again.
        response.raw_headers.append((b"cache-control", b"no-store"))
    return response


def proxy_router(services: list[str]) -> APIRouter:
    router = APIRouter(tags=["proxy"], include_in_schema=False)
    for service in services:

        def bind(service: str = service) -> None:
            @router.get(f"/{service}")
            async def to_page() -> RedirectResponse:
                return RedirectResponse(f"/{service}/", status_code=308)

            @router.api_route(f"/{service}/{{path:path}}", methods=METHODS, name=f"proxy-{service}")
            async def proxied(request: Request, path: str) -> Response:
                return await forward(request, service, path)

        bind()
    return router
