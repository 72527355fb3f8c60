"""The front door in-process against the real store: one fresh database per test, an admin seeded."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

import httpx
import pytest

from common.app import Runtime
from services.frontdoor.app import create_app
from services.frontdoor.sessions import FrontDoor
from services.frontdoor.settings import Settings

ADMIN, ADMIN_PASSWORD = "root.admin", "admin-password-1"
PASSWORD = "worker-password-1"


class FrontDoorUnderTest:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.transport = httpx.ASGITransport(app=app, client=("10.1.2.3", 5555))

    @property
    def frontdoor(self) -> FrontDoor:
        runtime: Runtime[FrontDoor] = self.app.state.runtime
        return runtime.service

    def client(self) -> AbstractAsyncContextManager[httpx.AsyncClient]:
        """A browser of its own (its own cookie jar)."""
        return httpx.AsyncClient(transport=self.transport, base_url="http://frontdoor.test")

    async def signed_in(self, client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
        r = await client.post("/auth/sign-in", json={"username": username, "password": password})
        assert r.status_code == 200, r.text
        return r


@pytest.fixture
async def fd(mongodb_url: str, db_name: str) -> AsyncIterator[FrontDoorUnderTest]:
    settings = Settings(
        mongodb_url=mongodb_url,
        mongodb_database=db_name,
        environment="test",
        hotline_url="http://hotline.test",
        router_url="http://router.test",
        relief_url="http://relief.test",
        notify_url="http://notify.test",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        under_test = FrontDoorUnderTest(app)
        await under_test.frontdoor.accounts.create(
            actor="test", username=ADMIN, password=ADMIN_PASSWORD, display_name="管理员", role="admin"
        )
        yield under_test


@pytest.fixture
async def admin(fd: FrontDoorUnderTest) -> AsyncIterator[httpx.AsyncClient]:
    async with fd.client() as client:
        await fd.signed_in(client, ADMIN, ADMIN_PASSWORD)
        yield client


AccountFactory = Callable[..., Any]


@pytest.fixture
def new_account(admin: httpx.AsyncClient) -> AccountFactory:
    async def create(username: str = "li.qiang", **fields: Any) -> dict[str, Any]:
        body = {
            "username": username,
            "display_name": "李强",
            "role": "dept_worker",
            "department": "civil_affairs",
            "district": "500103",
            "password": PASSWORD,
        } | fields
        r = await admin.post("/api/v1/accounts", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    return create
