"""`python -m services.frontdoor.admin create-admin`: the first admin of a production store, the password
from standard input (never the command line), weak passwords and taken names refused, audited."""

from __future__ import annotations

import asyncio
import os
import sys

import pytest

from tests.frontdoor.conftest import ADMIN, FrontDoorUnderTest

pytestmark = pytest.mark.integration

STRONG = "河边-Lantern-7-quiet"


async def command(mongodb_url: str, db_name: str, *args: str, stdin: str) -> tuple[int, str, str]:
    env = os.environ | {
        "FRONTDOOR_MONGODB_URL": mongodb_url,
        "FRONTDOOR_MONGODB_DATABASE": db_name,
        "FRONTDOOR_ENVIRONMENT": "production",
        "FRONTDOOR_JWT_SECRET": "a-production-secret-for-the-command-test-0123456789",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.frontdoor.admin",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin.encode()), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_first_admin_is_created_from_stdin_signs_in_and_is_audited(
    fd: FrontDoorUnderTest, mongodb_url, db_name
):
    code, out, err = await command(
        mongodb_url,
        db_name,
        "create-admin",
        "--username",
        "Zhang.Wei",
        "--display-name",
        "系统管理员 张伟",
        stdin=f"{STRONG}\n",
    )
    assert code == 0, err
    assert "zhang.wei" in out and STRONG not in out + err
    async with fd.client() as browser:
        r = await fd.signed_in(browser, "zhang.wei", STRONG)
        assert (r.json()["identity"]["role"], r.json()["go_to"]) == ("admin", "/accounts/")
        trail = (await browser.get("/api/v1/audit", params={"account": "zhang.wei"})).json()
    created = next(e for e in trail if e["action"] == "account_created")
    assert created["actor"].startswith("command line") and created["client"] == "command line"
    assert created["details"]["role"] == {"from": None, "to": "admin"}
    assert STRONG not in str(trail)


async def test_a_taken_user_name_is_refused(fd: FrontDoorUnderTest, mongodb_url, db_name):
    code, out, err = await command(
        mongodb_url, db_name, "create-admin", "--username", ADMIN, "--display-name", "另一个", stdin=f"{STRONG}\n"
    )
    assert code == 1 and "用户名已被使用" in err and "taken" in err
    async with fd.client() as browser:  # the existing admin's password is untouched
        await fd.signed_in(browser, ADMIN, "admin-password-1")


@pytest.mark.parametrize(
    ("password", "why"),
    [("dev-password", "too common"), ("short-pw", "at least 12"), ("zhang.wei-is-me", "user name"), ("", "at least")],
)
async def test_a_weak_password_is_refused_and_nothing_is_created(fd, mongodb_url, db_name, password, why):
    code, _, err = await command(
        mongodb_url, db_name, "create-admin", "--username", "zhang.wei", "--display-name", "张伟", stdin=f"{password}\n"
    )
    assert code == 1 and why in err, err
    assert await fd.frontdoor.accounts.store.account("zhang.wei") is None


async def test_the_password_cannot_be_given_on_the_command_line(mongodb_url, db_name):
    code, _, err = await command(
        mongodb_url,
        db_name,
        "create-admin",
        "--username",
        "zhang.wei",
        "--display-name",
        "张伟",
        "--password",
        STRONG,
        stdin="",
    )
    assert code == 2 and "unrecognized arguments" in err
