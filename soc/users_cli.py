"""`soc users add|passwd|list|disable|enable|unlock`: accounts from the command line, for the
first steps on a new server and for recovering a locked-out administrator. Passwords are read
from the terminal without echo, or from standard input with `--password-stdin` (scripts)."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from soc.accounts import ROLES, AccountError, Accounts
from soc.config import Config


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    users = commands.add_parser("users", help="add, change, list and disable users")
    users.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="YAML file")
    users.add_argument("--data-dir", metavar="DIR", help="where accounts.db lives")
    actions = users.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="create a user")
    add.add_argument("username")
    add.add_argument("--role", choices=ROLES, default="analyst")
    add.add_argument(
        "--agency", action="append", metavar="ID", help="scope to this agency (repeatable);"
        " none: every agency",
    )  # fmt: skip
    add.add_argument("--name", default="", help="display name")
    add.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    passwd = actions.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true")
    listing = actions.add_parser("list", help="list users")
    listing.add_argument("--json", action="store_true")
    for name, text in (
        ("disable", "disable a user (ends their sessions)"),
        ("enable", "enable a disabled user"),
        ("unlock", "clear a lockout after failed logins"),
    ):
        actions.add_parser(name, help=text).add_argument("username")


def _password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Repeat it: ") != first:
        raise AccountError("the passwords differ")
    return first


def run(config: Config, args: argparse.Namespace) -> int:
    path = Path(config.auth.database) if config.auth.database else config.data_dir / "accounts.db"
    accounts = Accounts(path)
    try:
        if args.action == "add":
            user = accounts.add_user(
                args.username, _password(args), args.role, args.agency, args.name
            )
            print(f"created {user.username} ({user.role})")
        elif args.action == "passwd":
            if accounts.user(args.username) is None:
                raise AccountError(f"no user {args.username!r}")
            accounts.set_password(args.username, _password(args))
            print(f"password of {args.username} changed; their sessions ended")
        elif args.action == "list":
            rows = [found.public() for found in accounts.users()]
            if args.json:
                print(json.dumps(rows, ensure_ascii=False, indent=2))
            for row in [] if args.json else rows:
                agencies = ",".join(row["agencies"]) if row["agencies"] is not None else "*"
                state = "disabled" if row["disabled"] else "locked" if row["locked"] else "ok"
                print(f"{row['username']:<24} {row['role']:<8} {state:<8} {agencies}")
        elif args.action in ("disable", "enable"):
            accounts.update_user(args.username, disabled=args.action == "disable")
            print(f"{args.username} {args.action}d")
        elif args.action == "unlock":
            if accounts.user(args.username) is None:
                raise AccountError(f"no user {args.username!r}")
            accounts.unlock(args.username)
            print(f"{args.username} unlocked")
    except AccountError as exc:
        print(f"soc: {exc}", file=sys.stderr)
        return 1
    finally:
        accounts.close()
    return 0
