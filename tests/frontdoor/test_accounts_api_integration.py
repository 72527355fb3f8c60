"""The accounts API against the real store: an admin creates, edits, disables and re-enables accounts and
resets passwords; sign-in with lockout; short-lived tokens that refresh until sign-out or disable; every
sign-in, failure and change in the audit trail; bilingual errors naming the field."""

from __future__ import annotations

from datetime import datetime

import httpx
import jwt
import pytest

from common.auth import decode_token
from common.settings import ServiceSettings
from services.frontdoor.sessions import COOKIE
from tests.frontdoor.conftest import ADMIN, PASSWORD, FrontDoorUnderTest

pytestmark = pytest.mark.integration

SERVICES = ServiceSettings(service_name="any-service")  # how every service verifies a token


async def audit_actions(admin: httpx.AsyncClient, account: str) -> list[str]:
    r = await admin.get("/api/v1/audit", params={"account": account})
    assert r.status_code == 200, r.text
    return [e["action"] for e in reversed(r.json())]


async def test_an_account_the_admin_creates_signs_in_and_lands_in_its_workspace(fd, admin, new_account):
    created = await new_account()
    assert created["username"] == "li.qiang" and created["disabled"] is False and "password_hash" not in created
    async with fd.client() as worker:
        r = await worker.post("/auth/sign-in", json={"username": "Li.Qiang", "password": PASSWORD})
        assert r.status_code == 200, r.text
        assert r.json()["go_to"] == "/router/"
        cookie = r.headers["set-cookie"]
        assert f"{COOKIE}=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert PASSWORD not in r.text and "access_token" not in r.text  # the page never holds a token
        who = (await worker.get("/auth/session")).json()
        assert (who["role"], who["department"], who["district"]) == ("dept_worker", "civil_affairs", "500103")
    assert await audit_actions(admin, "li.qiang") == ["account_created", "signed_in"]
    entries = (await admin.get("/api/v1/audit", params={"account": "li.qiang"})).json()
    assert entries[-1]["actor"] == ADMIN and entries[0]["client"] == "10.1.2.3"
    listed = (await admin.get("/api/v1/accounts")).json()
    assert {a["username"] for a in listed} == {ADMIN, "li.qiang"}
    assert all("password_hash" not in a for a in listed)


async def test_five_wrong_passwords_lock_the_account_and_a_password_reset_lifts_it(fd, admin, new_account):
    await new_account()
    async with fd.client() as someone:
        answers = [
            await someone.post("/auth/sign-in", json={"username": "li.qiang", "password": f"guess-{i}"})
            for i in range(5)
        ]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 423]
        assert answers[0].json()["message_zh"] == "用户名或密码错误"
        assert "锁定" in answers[4].json()["message_zh"] and "locked" in answers[4].json()["message_en"]
        # Locked: even the right password is refused, without counting as a failure.
        right = await someone.post("/auth/sign-in", json={"username": "li.qiang", "password": PASSWORD})
        assert right.status_code == 423
        locked = (await admin.get("/api/v1/accounts/li.qiang")).json()
        assert datetime.fromisoformat(locked["locked_until"])
        reset = await admin.post("/api/v1/accounts/li.qiang/password", json={"password": "a-new-password-2"})
        assert reset.status_code == 200 and reset.json()["locked_until"] is None
        assert (
            await someone.post("/auth/sign-in", json={"username": "li.qiang", "password": "a-new-password-2"})
        ).status_code == 200
    assert await audit_actions(admin, "li.qiang") == [
        "account_created",
        *["sign_in_failed"] * 5,
        "account_locked",
        "sign_in_locked",
        "password_reset",
        "signed_in",
    ]


async def test_unknown_user_names_get_the_same_answer_as_wrong_passwords(fd):
    async with fd.client() as someone:
        r = await someone.post("/auth/sign-in", json={"username": "nobody", "password": "whatever-1"})
    assert r.status_code == 401 and r.json()["message_en"] == "wrong user name or password"


async def test_api_tokens_are_short_lived_verify_at_the_services_and_refresh_until_revoked(fd, new_account):
    await new_account()
    async with fd.client() as client:
        r = await client.post("/auth/token", json={"username": "li.qiang", "password": PASSWORD})
        assert r.status_code == 200, r.text
        tokens = r.json()
        assert COOKIE not in r.headers.get("set-cookie", "")
        claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 15 * 60 and claims["sid"]
        principal = decode_token(SERVICES, tokens["access_token"])
        assert (principal.sub, principal.role, principal.department) == ("li.qiang", "dept_worker", "civil_affairs")

        refreshed = await client.post("/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200 and refreshed.json()["access_token"]
        # The front door's own API accepts the access token as a bearer.
        bearer = {"Authorization": f"Bearer {refreshed.json()['access_token']}"}
        assert (await client.get("/auth/session", headers=bearer)).json()["username"] == "li.qiang"

        forged = tokens["refresh_token"].split(".")[0] + ".not-the-secret"
        assert (await client.post("/auth/token/refresh", json={"refresh_token": forged})).status_code == 401

        assert (
            await client.post("/auth/token/revoke", json={"refresh_token": tokens["refresh_token"]})
        ).status_code == 204
        after = await client.post("/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert after.status_code == 401 and after.json()["code"] == "session_ended" and after.json()["message_zh"]
        assert (await client.get("/auth/session", headers=bearer)).status_code == 401


async def test_disabling_an_account_ends_its_sessions_at_once_and_refuses_refresh(fd, admin, new_account):
    await new_account()
    async with fd.client() as worker, fd.client() as api_client:
        await fd.signed_in(worker, "li.qiang", PASSWORD)
        tokens = (await api_client.post("/auth/token", json={"username": "li.qiang", "password": PASSWORD})).json()
        assert (await worker.get("/auth/session")).status_code == 200

        disabled = await admin.post("/api/v1/accounts/li.qiang/disable")
        assert disabled.status_code == 200 and disabled.json()["disabled"] is True

        refused = await worker.get("/auth/session")
        assert refused.status_code == 401 and refused.json()["message_zh"]
        refresh = await api_client.post("/auth/token/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refresh.status_code == 401
        again = await worker.post("/auth/sign-in", json={"username": "li.qiang", "password": PASSWORD})
        assert again.status_code == 401 and again.json()["message_zh"].startswith("账户已停用")

        assert (await admin.post("/api/v1/accounts/li.qiang/enable")).json()["disabled"] is False
        await fd.signed_in(worker, "li.qiang", PASSWORD)
    entries = (await admin.get("/api/v1/audit", params={"account": "li.qiang"})).json()
    disabled_entry = next(e for e in entries if e["action"] == "account_disabled")
    assert disabled_entry["details"]["sessions_revoked"] == 2 and disabled_entry["actor"] == ADMIN


async def test_an_edit_changes_the_claims_of_the_next_request_and_is_audited_field_by_field(fd, admin, new_account):
    await new_account()
    async with fd.client() as person:
        await fd.signed_in(person, "li.qiang", PASSWORD)
        r = await admin.patch(
            "/api/v1/accounts/li.qiang", json={"role": "coordinator", "district": "city", "display_name": "统筹 李强"}
        )
        assert r.status_code == 200, r.text
        assert (r.json()["role"], r.json()["department"], r.json()["district"]) == ("coordinator", None, "city")
        who = (await person.get("/auth/session")).json()
        assert (who["role"], who["workspace"], who["display_name"]) == ("coordinator", "/notify/", "统筹 李强")
    entries = (await admin.get("/api/v1/audit", params={"account": "li.qiang"})).json()
    assert entries[0]["action"] == "account_updated"
    assert entries[0]["details"]["role"] == {"from": "dept_worker", "to": "coordinator"}
    assert entries[0]["details"]["department"] == {"from": "civil_affairs", "to": None}


async def test_sign_out_ends_the_session_even_for_a_kept_copy_of_the_cookie(fd, new_account):
    await new_account()
    async with fd.client() as person:
        await fd.signed_in(person, "li.qiang", PASSWORD)
        kept = person.cookies[COOKIE]
        out = await person.post("/auth/sign-out")
        assert out.status_code == 204 and COOKIE not in person.cookies
    async with fd.client() as replayer:
        replayer.cookies.set(COOKIE, kept)
        assert (await replayer.get("/auth/session")).status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "zh"),
    [
        ({"department": None}, "department", "部门工作人员须指定部门"),
        ({"district": "999999"}, "district", "区县代码不存在"),
        ({"password": "short"}, "password", "密码至少 10 个字符"),
        ({"username": "王芳"}, "username", "用户名须为"),
    ],
)
async def test_bad_account_input_is_refused_in_chinese_and_english_naming_the_field(admin, body, field, zh):
    account = {
        "username": "li.qiang",
        "display_name": "李强",
        "role": "dept_worker",
        "department": "civil_affairs",
        "district": "500103",
        "password": PASSWORD,
    } | body
    r = await admin.post("/api/v1/accounts", json=account)
    assert r.status_code == 422, r.text
    assert r.json()["field"] == field and r.json()["message_zh"].startswith(zh) and r.json()["message_en"]


async def test_schema_errors_name_the_field_too(admin):
    r = await admin.post(
        "/api/v1/accounts", json={"username": "li.qiang", "display_name": "李强", "role": "boss", "password": PASSWORD}
    )
    assert r.status_code == 422
    [error] = r.json()["errors"]
    assert error["field"] == "role" and error["reason_zh"] == "取值不在允许范围内"


async def test_a_taken_user_name_is_refused(admin, new_account):
    await new_account()
    again = await admin.post(
        "/api/v1/accounts", json={"username": "LI.QIANG", "display_name": "x", "role": "admin", "password": PASSWORD}
    )
    assert again.status_code == 409 and again.json()["field"] == "username"


async def test_an_admin_cannot_disable_or_demote_themselves(admin):
    assert (await admin.post(f"/api/v1/accounts/{ADMIN}/disable")).status_code == 403
    demote = await admin.patch(f"/api/v1/accounts/{ADMIN}", json={"role": "operator"})
    assert demote.status_code == 403 and demote.json()["field"] == "role"


async def test_only_admins_manage_accounts(fd, new_account):
    await new_account()
    async with fd.client() as worker:
        assert (await worker.get("/api/v1/accounts")).status_code == 401
        await fd.signed_in(worker, "li.qiang", PASSWORD)
        forbidden = await worker.get("/api/v1/accounts")
        assert forbidden.status_code == 403 and forbidden.json()["message_zh"]
        assert (await worker.get("/accounts/", follow_redirects=False)).headers["location"] == "/router/"


async def test_a_cross_origin_write_with_the_cookie_is_refused(admin):
    r = await admin.post("/api/v1/accounts/li.qiang/disable", headers={"Origin": "http://127.0.0.1:8001"})
    assert r.status_code == 403


async def test_the_password_is_never_stored_in_clear_nor_audited(fd: FrontDoorUnderTest, admin, new_account):
    await new_account()
    store = fd.frontdoor.accounts.store
    doc = await store.account("li.qiang")
    assert doc is not None and doc["password_hash"].startswith("$argon2id$") and PASSWORD not in str(doc)
    audit = [e async for e in store.audit_trail.find({})]
    assert PASSWORD not in str(audit) and "argon2" not in str(audit)
