"""The first admin of a production store, from the command line (the front door's settings, `FRONTDOOR_`):

    python -m services.frontdoor.admin create-admin --username zhang.wei --display-name "系统管理员 张伟"

The password is read from the terminal (asked twice, not echoed) or, piped, from the first line of
standard input; never from the command line, where `ps` and the shell's history would keep it. A weak
password (`check_admin_password`) or a user name already taken is refused; the account is created and
audited (`account_created`, by `command line (<OS user>)`) as the admin's own changes are."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from typing import TextIO

from common.errors import DomainError
from common.principal import Role
from common.store import open_mongo
from services.frontdoor.accounts import Accounts
from services.frontdoor.domain.accounts import InvalidAccount, check_admin_password, check_username
from services.frontdoor.settings import Settings
from services.frontdoor.store import Doc, FrontdoorStore

CLIENT = "command line"


def read_password(stdin: TextIO) -> str:
    """From a terminal: asked twice, not echoed. Piped: the first line (`printf '%s\\n' "$PW" | ...`)."""
    if stdin.isatty():
        first = getpass.getpass("新密码 / new password: ")
        if getpass.getpass("再输入一次 / again: ") != first:
            raise InvalidAccount("两次输入的密码不一致", "the two passwords differ", field="password")
        return first
    return stdin.readline().rstrip("\r\n")


def operator_of_the_command() -> str:
    try:
        return f"{CLIENT} ({getpass.getuser()})"
    except (KeyError, OSError):  # no user name in the container's passwd
        return CLIENT


async def create_admin(settings: Settings, *, username: str, display_name: str, password: str, actor: str) -> Doc:
    """Check the name and the password first (no store needed to refuse them), then create and audit."""
    name = check_username(username)
    if not display_name.strip():
        raise InvalidAccount("请填写显示名", "a display name is needed", field="display_name")
    check_admin_password(password, min_length=settings.password_min_length, username=name)
    mongo = open_mongo(settings)
    try:
        store = FrontdoorStore(mongo[settings.database_name])
        await store.ensure_indexes()
        return await Accounts(store, settings).create(
            actor=actor, username=name, password=password, display_name=display_name, role=Role.ADMIN, client=CLIENT
        )
    finally:
        await mongo.close()


def main(argv: list[str] | None = None, *, stdin: TextIO | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.frontdoor.admin", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-admin", help="create an admin account (the password from a prompt or stdin)")
    create.add_argument("--username", required=True)
    create.add_argument("--display-name", required=True)
    args = parser.parse_args(argv)
    try:
        password = read_password(stdin or sys.stdin)
        settings = Settings()
        doc = asyncio.run(
            create_admin(
                settings,
                username=args.username,
                display_name=args.display_name,
                password=password,
                actor=operator_of_the_command(),
            )
        )
    except DomainError as refused:
        where = f" ({refused.field})" if refused.field else ""
        print(f"未创建 / not created{where}: {refused.message_zh} / {refused.message_en}", file=sys.stderr)
        return 1
    print(f"管理员账户已创建 / admin account created: {doc['_id']} ({doc['display_name']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
