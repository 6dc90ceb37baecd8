"""Operator commands: `python -m api.cli create-admin | reset-mfa USERNAME | wait-for-db`."""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time

from api.core.config import ConfigurationError, Settings, load_settings
from api.core.credentials import password_hasher_from_settings
from api.core.db import Database
from api.services import mfa
from api.services.users import AdminAccountTaken, ensure_admin, find_user_by_login

log = logging.getLogger("pixelgate.cli")


def create_admin(settings: Settings) -> int:
    """Creates the admin named by ADMIN_*; a no-op when they are unset or it exists."""
    database = Database(settings.database_url)
    try:
        with database.session() as db:
            admin = ensure_admin(db, settings, password_hasher_from_settings(settings))
    except AdminAccountTaken as exc:
        # Not fatal: the service runs without a bootstrapped admin rather than promote anyone.
        print(f"warning: {exc}", file=sys.stderr)
        return 0
    finally:
        database.dispose()
    if admin is None:
        print("ADMIN_USERNAME, ADMIN_EMAIL and ADMIN_PASSWORD are not all set; nothing to do")
        return 0
    print(f"admin ready: id={admin.id} username={admin.username}")
    return 0


def reset_mfa(settings: Settings, username: str) -> int:
    """Removes an account's two-factor authentication, as an admin's reset does (audited
    `mfa_reset`, no actor): for an admin who lost the device and the recovery codes when no
    other admin can reset it."""
    database = Database(settings.database_url)
    try:
        with database.session() as db:
            user = find_user_by_login(db, username)
            if user is None:
                print(f"no account named {username!r}", file=sys.stderr)
                return 1
            mfa.reset(db, None, user.id, client=None)
    finally:
        database.dispose()
    print(f"two-factor authentication removed: id={user.id} username={user.username}")
    return 0


def wait_for_db(settings: Settings, timeout_s: float, interval_s: float = 1.0) -> int:
    """Polls the database until it answers or `timeout_s` passes (bounded, for start-up).

    Each attempt's connect timeout is capped by the overall one (libpq's floor is 2 s), so a
    server that accepts connections but never answers cannot hold it up for long.
    """
    database = Database(
        settings.database_url, connect_timeout_s=max(2, min(10, math.ceil(timeout_s)))
    )
    deadline = time.monotonic() + timeout_s
    attempt = 0
    try:
        while True:
            attempt += 1
            if database.is_reachable():
                print(f"database reachable after {attempt} attempt(s)")
                return 0
            if time.monotonic() >= deadline:
                print(f"database not reachable after {timeout_s:.0f}s", file=sys.stderr)
                return 1
            time.sleep(interval_s)
    finally:
        database.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.cli", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("create-admin", help="create the first admin from ADMIN_* settings")
    reset = commands.add_parser("reset-mfa", help="remove an account's two-factor authentication")
    reset.add_argument("username", help="username or email of the account")
    wait = commands.add_parser("wait-for-db", help="wait until DATABASE_URL answers")
    wait.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.command == "create-admin":
        try:
            return create_admin(settings)
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 2
    if args.command == "reset-mfa":
        return reset_mfa(settings, args.username)
    return wait_for_db(settings, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
