"""The front door's pure rules: lockout after repeated failures, token and session lifetimes, who may
hold which role where, and where a person lands after signing in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from common.principal import Role
from services.frontdoor.domain.accounts import (
    WORKSPACES,
    InvalidAccount,
    after_sign_in,
    check_admin_password,
    check_password,
    check_profile,
    check_username,
    workspace,
)
from services.frontdoor.domain.audit import changes
from services.frontdoor.domain.lockout import Attempt, LockoutPolicy, is_locked, locked_until
from services.frontdoor.domain.tokens import Lifetimes, SessionState, needs_renewal, refusal

pytestmark = pytest.mark.unit

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15))


def fails(*minutes: float) -> list[Attempt]:
    return [Attempt(T0 + timedelta(minutes=m), ok=False) for m in minutes]


def test_five_failures_within_the_window_lock_the_account_for_the_lockout_from_the_last():
    assert locked_until(fails(0, 1, 2, 3, 4), POLICY) == T0 + timedelta(minutes=4 + 15)


def test_four_failures_do_not_lock():
    assert locked_until(fails(0, 1, 2, 3), POLICY) is None


def test_failures_further_apart_than_the_window_do_not_add_up():
    assert locked_until(fails(0, 5, 10, 16, 21), POLICY) is None


def test_a_successful_sign_in_starts_the_count_afresh():
    attempts = fails(0, 1, 2, 3) + [Attempt(T0 + timedelta(minutes=3.5), ok=True)] + fails(4)
    assert locked_until(attempts, POLICY) is None


def test_an_admin_reset_lifts_the_lock_and_starts_the_count_afresh():
    attempts = fails(0, 1, 2, 3, 4)
    assert locked_until(attempts, POLICY, reset_at=T0 + timedelta(minutes=5)) is None
    assert locked_until(attempts + fails(6), POLICY, reset_at=T0 + timedelta(minutes=5)) is None


def test_the_lock_ends_after_the_lockout_and_the_count_starts_afresh():
    attempts = fails(0, 1, 2, 3, 4)
    assert is_locked(attempts, POLICY, now=T0 + timedelta(minutes=18)) == T0 + timedelta(minutes=19)
    assert is_locked(attempts, POLICY, now=T0 + timedelta(minutes=19)) is None
    # One more failure after the lock is one, not six.
    assert is_locked(attempts + fails(20), POLICY, now=T0 + timedelta(minutes=20)) is None


def test_five_fresh_failures_after_a_lock_lock_again():
    attempts = fails(0, 1, 2, 3, 4) + fails(20, 21, 22, 23, 24)
    assert locked_until(attempts, POLICY) == T0 + timedelta(minutes=24 + 15)


def test_the_order_attempts_are_read_in_does_not_matter():
    assert locked_until(list(reversed(fails(0, 1, 2, 3, 4))), POLICY) == T0 + timedelta(minutes=19)


def test_an_access_token_lives_fifteen_minutes_but_never_past_its_session():
    lifetimes = Lifetimes(access=timedelta(minutes=15), session=timedelta(hours=12))
    session_end = lifetimes.session_expires_at(signed_in_at=T0)
    assert session_end == T0 + timedelta(hours=12)
    assert lifetimes.access_expires_at(now=T0, session_expires_at=session_end) == T0 + timedelta(minutes=15)
    late = session_end - timedelta(minutes=5)
    assert lifetimes.access_expires_at(now=late, session_expires_at=session_end) == session_end


def test_a_cached_access_token_is_renewed_a_minute_before_it_expires():
    assert not needs_renewal(T0 + timedelta(minutes=2), now=T0)
    assert needs_renewal(T0 + timedelta(seconds=59), now=T0)
    assert needs_renewal(None, now=T0)


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (None, "unknown"),
        (SessionState(expires_at=T0 + timedelta(hours=1), revoked_at=None, account_disabled=True), "disabled"),
        (SessionState(expires_at=T0 + timedelta(hours=1), revoked_at=T0, account_disabled=False), "signed out"),
        (SessionState(expires_at=T0, revoked_at=None, account_disabled=False), "expired"),
    ],
)
def test_a_session_cannot_refresh_once_signed_out_expired_or_its_account_disabled(state, why):
    reason = refusal(state, now=T0)
    assert reason is not None and why in reason[1] and reason[0]


def test_a_live_session_of_an_enabled_account_refreshes():
    assert (
        refusal(SessionState(expires_at=T0 + timedelta(hours=1), revoked_at=None, account_disabled=False), now=T0)
        is None
    )


def test_a_department_worker_needs_a_known_department_and_district():
    assert check_profile("dept_worker", "civil_affairs", "500103").department == "civil_affairs"
    with pytest.raises(InvalidAccount) as missing:
        check_profile("dept_worker", None, "500103")
    assert missing.value.field == "department" and missing.value.message_zh
    with pytest.raises(InvalidAccount) as unknown:
        check_profile("dept_worker", "no_such_dept", "500103")
    assert unknown.value.field == "department"
    with pytest.raises(InvalidAccount) as city:
        check_profile("dept_worker", "civil_affairs", "city")
    assert city.value.field == "district"


def test_other_roles_drop_a_department_and_admins_a_district():
    assert check_profile("coordinator", "civil_affairs", "city").department is None
    admin = check_profile("admin", "civil_affairs", "500103")
    assert (admin.department, admin.district) == (None, None)
    with pytest.raises(InvalidAccount) as no_district:
        check_profile("relief_officer", None, None)
    assert no_district.value.field == "district"
    with pytest.raises(InvalidAccount) as bad:
        check_profile("operator", None, "999999")
    assert bad.value.field == "district"


def test_user_names_are_lower_case_and_passwords_long_enough_and_not_the_name():
    assert check_username("  Wang.Fang ") == "wang.fang"
    with pytest.raises(InvalidAccount):
        check_username("王芳")
    with pytest.raises(InvalidAccount) as short:
        check_password("short", min_length=10, username="wang")
    assert short.value.field == "password" and "10" in short.value.message_zh
    with pytest.raises(InvalidAccount):
        check_password("Wang.Fang", min_length=5, username="wang.fang")


def test_each_role_lands_in_its_workspace_and_never_outside_the_front_door():
    assert workspace(Role.OPERATOR) == "/hotline/"
    assert workspace(Role.DEPT_WORKER) == "/router/"
    assert workspace(Role.RELIEF_OFFICER) == "/relief/"
    assert workspace(Role.COORDINATOR) == "/notify/"
    assert workspace(Role.ADMIN) == "/accounts/"
    assert after_sign_in(Role.COORDINATOR, "/relief/") == "/relief/"  # the subsidy runs
    # The coordinator's one workspace is /notify/ (arbitration included): no router page in the bar.
    assert WORKSPACES[Role.COORDINATOR] == ("/notify/", "/relief/")
    assert after_sign_in(Role.COORDINATOR, "/router/") == "/notify/"
    assert "/router/" in WORKSPACES[Role.ADMIN]
    assert after_sign_in(Role.OPERATOR, "/router/") == "/hotline/"
    assert after_sign_in(Role.ADMIN, "https://evil.example/") == "/accounts/"
    assert after_sign_in(Role.ADMIN, "//evil.example/hotline/") == "/accounts/"


@pytest.mark.parametrize(
    "password",
    [
        "short-1",
        "dev-password",
        "Password123",
        "password123456",
        "aaaaaaaaaaaaaaaa",
        "zhang.wei-2026-ok",
        "qwertyuiop-2026",
    ],
)
def test_a_first_admins_password_must_be_strong(password):
    with pytest.raises(InvalidAccount) as weak:
        check_admin_password(password, min_length=10, username="zhang.wei")
    assert weak.value.field == "password" and weak.value.message_zh and weak.value.message_en


def test_a_long_varied_password_is_a_strong_one():
    assert check_admin_password("河边-Lantern-7-quiet", min_length=10, username="zhang.wei")


def test_the_audit_records_what_changed_and_never_the_password():
    before = {"display_name": "王芳", "role": "operator", "district": "500103", "password_hash": "x"}
    after = {"display_name": "王芳", "role": "coordinator", "district": "city", "password_hash": "y"}
    assert changes(before, after) == {
        "role": {"from": "operator", "to": "coordinator"},
        "district": {"from": "500103", "to": "city"},
    }
