"""The front door's proxy: a browser's request reaches the service with the session's short-lived
token in place of the cookie; an ended session is refused before it reaches any service."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from common.auth import decode_token
from common.settings import ServiceSettings
from services.frontdoor.sessions import COOKIE
from tests.frontdoor.conftest import PASSWORD, FrontDoorUnderTest

pytestmark = pytest.mark.integration

SERVICES = ServiceSettings(service_name="any-service")


@pytest.fixture
def upstream(fd: FrontDoorUnderTest) -> list[httpx.Request]:
    """The services, as one recording stand-in behind the proxy's HTTP client."""
    seen: list[httpx.Request] = []

    async def answer(request: httpx.Request) -> httpx.Response:
        await request.aread()
        seen.append(request)
        body = json.dumps({"path": request.url.path, "query": request.url.query.decode()}).encode()

        async def streamed() -> AsyncIterator[bytes]:  # as a real service's reply arrives: not yet read
            yield body

        return httpx.Response(
            201,
            content=streamed(),
            headers={"x-from": request.url.host, "connection": "close", "content-type": "application/json"},
        )

    fd.frontdoor.http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    return seen


async def test_a_signed_in_request_reaches_the_service_with_a_token_and_without_the_cookie(fd, new_account, upstream):
    await new_account()
    async with fd.client() as worker:
        await fd.signed_in(worker, "li.qiang", PASSWORD)
        r = await worker.post("/router/api/v1/tasks/T-1/progress?x=1&y=%E4%B8%AD", json={"note": "上门核实"})
        assert r.status_code == 201 and r.headers["x-from"] == "router.test"
        assert r.json() == {"path": "/api/v1/tasks/T-1/progress", "query": "x=1&y=%E4%B8%AD"}
        [request] = upstream
        assert request.content == '{"note":"上门核实"}'.encode()
        assert "cookie" not in request.headers and request.headers["x-forwarded-prefix"] == "/router"
        principal = decode_token(SERVICES, request.headers["authorization"].removeprefix("Bearer "))
        assert (principal.sub, principal.role, principal.department) == ("li.qiang", "dept_worker", "civil_affairs")
        # The next request reuses the minted token rather than signing one per request.
        await worker.get("/router/api/v1/queue")
        assert upstream[1].headers["authorization"] == request.headers["authorization"]


async def test_after_the_account_is_disabled_the_next_request_is_refused_at_the_door(fd, admin, new_account, upstream):
    await new_account()
    async with fd.client() as worker:
        await fd.signed_in(worker, "li.qiang", PASSWORD)
        assert (await worker.get("/router/api/v1/queue")).status_code == 201
        await admin.post("/api/v1/accounts/li.qiang/disable")
        refused = await worker.get("/router/api/v1/queue")
        assert refused.status_code == 401 and refused.json()["message_zh"] == "账户已停用"
        assert COOKIE not in worker.cookies  # cleared
        worker.cookies.set(COOKIE, "not.a-session")
        page = await worker.get("/router/", follow_redirects=False)
        assert page.status_code == 303 and page.headers["location"].startswith("/?next=/router/")
    assert len(upstream) == 1


async def test_a_page_without_a_session_sends_the_person_to_sign_in(fd, upstream):
    async with fd.client() as someone:
        r = await someone.get("/hotline/", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/?next=/hotline/"
        # Machines keep their own bearer token; public reads go through as they are.
        r = await someone.get("/hotline/open311/v2/services.json", headers={"Authorization": "Bearer abc"})
        assert r.status_code == 201 and upstream[-1].headers["authorization"] == "Bearer abc"


async def test_a_service_that_is_down_gets_a_bilingual_502(fd, new_account):
    async def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    fd.frontdoor.http = httpx.AsyncClient(transport=httpx.MockTransport(down))
    async with fd.client() as someone:
        r = await someone.get("/notify/api/v1/cases")
    assert r.status_code == 502 and r.json()["message_zh"] == "无法连接服务，请稍后重试"


async def test_a_services_api_docs_load_through_the_front_door_and_on_its_own_port(fd, new_account):
    """`/router/docs` behind the door loads `/router/openapi.json`, whose `servers` sends "Try it out"
    back through the door; the service's own port keeps `/docs` and `/openapi.json` as they were."""
    from services.router.app import create_app as router_app
    from services.router.settings import Settings as RouterSettings

    router = router_app(RouterSettings(environment="test"))
    fd.frontdoor.http = httpx.AsyncClient(transport=httpx.ASGITransport(app=router))
    await new_account()
    async with fd.client() as worker:
        await fd.signed_in(worker, "li.qiang", PASSWORD)
        docs = await worker.get("/router/docs")
        assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
        assert "'/router/openapi.json'" in docs.text and "/router/docs/oauth2-redirect" in docs.text
        spec = await worker.get("/router/openapi.json")
        assert spec.status_code == 200 and spec.json()["servers"] == [{"url": "/router"}]
        assert any(path.startswith("/api/v1/") for path in spec.json()["paths"])
        assert (await worker.get("/router/docs/oauth2-redirect")).status_code == 200
    async with fd.client() as machine:  # no session: the docs are as public as on the service's port
        assert (await machine.get("/router/openapi.json")).json()["servers"] == [{"url": "/router"}]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=router), base_url="http://router.test") as own:
        docs = await own.get("/docs")
        assert docs.status_code == 200 and "'/openapi.json'" in docs.text
        assert "servers" not in (await own.get("/openapi.json")).json()  # not left over from the door's calls
        # A prefix that is not a plain path is ignored: it would end up in the page's script.
        bad = await own.get("/docs", headers={"X-Forwarded-Prefix": "/x';alert(1);//"})
        assert "alert" not in bad.text and "'/openapi.json'" in bad.text
