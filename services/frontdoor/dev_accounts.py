"""One account per role for a developer's `make run`, created only in development and only when the
store has no account at all (so a real admin's changes are never overwritten)."""

from __future__ import annotations

from services.frontdoor.accounts import Accounts

DEV_PASSWORD = "dev-password"  # documented in the README; development only
DEV_ACCOUNTS = (
    # username, display name, role, department, district
    ("operator", "接线员 王芳", "operator", None, "500103"),
    ("worker", "民政局 李强（渝中区）", "dept_worker", "civil_affairs", "500103"),
    ("relief", "救助经办 张敏（渝中区）", "relief_officer", None, "500103"),
    ("relief2", "救助复核 陈静（渝中区）", "relief_officer", None, "500103"),  # the second signature (P6.1)
    ("coordinator", "统筹 刘洋（渝中区）", "coordinator", None, "500103"),
    ("admin", "系统管理员", "admin", None, None),
)


async def create_dev_accounts(accounts: Accounts) -> bool:
    """Create the development accounts unless any account exists; print them (not a log line: the
    password is a development default everybody knows, and logs never carry passwords)."""
    if await accounts.store.any_account():
        return False
    for username, display_name, role, department, district in DEV_ACCOUNTS:
        await accounts.create(
            actor="make-run",
            username=username,
            password=DEV_PASSWORD,
            display_name=display_name,
            role=role,
            department=department,
            district=district,
        )
    names = ", ".join(f"{u} ({r})" for u, _, r, _, _ in DEV_ACCOUNTS)
    print(f"Development accounts created, password {DEV_PASSWORD!r}: {names}", flush=True)
    return True
