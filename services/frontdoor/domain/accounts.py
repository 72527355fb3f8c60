"""Accounts: who may hold which role where, user names, passwords, and each role's workspace."""

from __future__ import annotations

import re
from dataclasses import dataclass

from common.errors import DomainError
from common.principal import CITY, Role
from contracts.codes import is_department, is_district

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
PASSWORD_MAX = 256


class InvalidAccount(DomainError):
    status = 422
    code = "invalid_account"


@dataclass(frozen=True)
class Profile:
    """What an account may do and where: the claims its tokens carry."""

    role: Role
    department: str | None = None
    district: str | None = None


def normalise_username(raw: str) -> str:
    """User names are case-insensitive: `Wang.Fang` signs in as `wang.fang`."""
    return raw.strip().lower()


def check_username(username: str) -> str:
    name = normalise_username(username)
    if not USERNAME.match(name):
        raise InvalidAccount(
            "用户名须为 3–32 位小写字母、数字或 . _ -，以字母或数字开头",
            "user name: 3-32 lower-case letters, digits or . _ -, starting with a letter or digit",
            field="username",
        )
    return name


def check_password(password: str, *, min_length: int, username: str, field: str = "password") -> str:
    if len(password) < min_length:
        raise InvalidAccount(
            f"密码至少 {min_length} 个字符", f"the password needs at least {min_length} characters", field=field
        )
    if len(password) > PASSWORD_MAX:
        raise InvalidAccount("密码过长", "the password is too long", field=field)
    if password.strip().lower() == username:
        raise InvalidAccount("密码不能与用户名相同", "the password must not be the user name", field=field)
    return password


ADMIN_PASSWORD_MIN = 12
# Passwords everybody tries first (and the development accounts' one); a production admin's is none.
COMMON_PASSWORDS = frozenset(
    {
        "dev-password",
        "password",
        "password1",
        "password123",
        "password1234",
        "passw0rd",
        "changeme",
        "change-me",
        "letmein",
        "welcome",
        "welcome123",
        "administrator",
        "admin12345",
        "admin123456",
        "qwertyuiop",
        "qwerty123456",
        "1qaz2wsx3edc",
        "abc123456789",
        "123456789012",
        "1234567890ab",
        "iloveyou",
    }
)


def check_admin_password(password: str, *, min_length: int, username: str) -> str:
    """A first admin's password (the command line's): the account rules, at least 12 characters, none
    of the common ones, not containing the user name, and not a few characters repeated."""
    check_password(password, min_length=max(min_length, ADMIN_PASSWORD_MIN), username=username)
    folded = password.strip().lower()
    if folded in COMMON_PASSWORDS or any(folded.startswith(p) for p in COMMON_PASSWORDS if len(p) >= 8):
        raise InvalidAccount("密码过于常见，请换一个", "the password is too common; choose another", field="password")
    if username in folded:
        raise InvalidAccount("密码不能包含用户名", "the password must not contain the user name", field="password")
    if len(set(password)) < 6:
        raise InvalidAccount(
            "密码至少要有 6 个不同的字符", "the password needs at least 6 different characters", field="password"
        )
    return password


def check_profile(role: Role | str, department: str | None, district: str | None) -> Profile:
    """The claims a role needs, checked against the code lists. A department belongs to department
    workers only (other roles drop it); admins act city-wide, so their district is dropped too."""
    role = Role(role)
    department = (department or "").strip() or None
    district = (district or "").strip() or None
    if role is not Role.DEPT_WORKER:
        department = None
    if role is Role.ADMIN:
        district = None
    if role is Role.DEPT_WORKER:
        if department is None:
            raise InvalidAccount("部门工作人员须指定部门", "a department worker needs a department", field="department")
        if not is_department(department):
            raise InvalidAccount("部门代码不存在", f"unknown department code {department!r}", field="department")
        if district is None or district == CITY:
            raise InvalidAccount("部门工作人员须指定区县", "a department worker needs a district", field="district")
    if role in (Role.RELIEF_OFFICER, Role.COORDINATOR) and district is None:
        raise InvalidAccount("须指定区县，或“全市”(city)", "needs a district, or city", field="district")
    if district is not None and district != CITY and not is_district(district):
        raise InvalidAccount("区县代码不存在", f"unknown district code {district!r}", field="district")
    if district == CITY and role is Role.OPERATOR:
        district = None  # an operator's district only preselects the place of hardship on the form
    return Profile(role=role, department=department, district=district)


# The page each role works in, and the pages it may open from the front door's bar. The coordinator's
# one workspace is /notify/ (deadlines, escalations and the arbitration of returned cases); /relief/
# for the subsidy runs. The router's page is the department desk (and the admin's).
WORKSPACES: dict[Role, tuple[str, ...]] = {
    Role.OPERATOR: ("/hotline/",),
    Role.DEPT_WORKER: ("/router/",),
    Role.RELIEF_OFFICER: ("/relief/",),
    Role.COORDINATOR: ("/notify/", "/relief/"),
    Role.ADMIN: ("/accounts/", "/hotline/", "/router/", "/relief/", "/notify/"),
}


def workspace(role: Role | str) -> str:
    return WORKSPACES[Role(role)][0]


def after_sign_in(role: Role | str, requested: str | None) -> str:
    """Where a person goes after signing in: the page they asked for if their role works there (never
    an address outside the front door), else their workspace."""
    pages = WORKSPACES[Role(role)]
    if requested:
        for page in pages:
            if requested == page or requested == page.rstrip("/"):
                return page
    return pages[0]
