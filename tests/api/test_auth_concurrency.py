"""Auth under concurrent requests against a real server, on each backend: the one-time rules
hold (one refresh per token) and nothing fails because another request wrote at the same time."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.models import AuditEntry, AuthSession
from tests.support.accounts import AccountFactory, login, signup
from tests.support.concurrency import all_at_once
from tests.support.mfa import enable_mfa, mfa_token, totp_code, verify_mfa
from tests.support.servers import LiveClient, api_env, api_server


@pytest.fixture
def live(database_url: str, tmp_path: Path) -> Iterator[str]:
    """A real uvicorn on the test database; yields its base URL."""
    with api_server(api_env(database_url, tmp_path / "images"), tmp_path / "server.log") as url:
        yield url


def test_concurrent_refreshes_of_one_token_let_exactly_one_through(
    live: str, database_url: str, accounts: AccountFactory
) -> None:
    """PostgreSQL's row lock and SQLite's write lock both serialise the conditional UPDATE that
    claims the token; every loser presented a rotated token, which burns the session."""
    tokens = accounts.logged_in(LiveClient(live), "race_001").tokens
    body = {"refresh_token": tokens["refresh_token"]}
    responses = all_at_once([lambda: LiveClient(live).post("/auth/refresh", json=body)] * 20)
    assert sorted(r.status_code for r in responses) == [200] + [401] * 19

    engine = create_engine(database_url)
    try:
        with Session(engine) as db:
            assert db.scalars(select(AuthSession.revoked_reason)).one() == "refresh_token_reuse"
            # Recorded once, however many requests detected the reuse.
            assert db.scalars(select(AuditEntry.action)).all() == ["session.refresh_token_reuse"]
    finally:
        engine.dispose()


def test_concurrent_writes_do_not_fail_each_other(live: str, accounts: AccountFactory) -> None:
    """Sign-ups, logins (good and bad), profile edits, refreshes and logouts all at once: each
    gets its own answer, none a 500 (SQLite must not refuse a write because another committed)."""
    setup = LiveClient(live)
    member = accounts.logged_in(setup, "busy_001")
    sessions = [login(setup, "busy_001").json() for _ in range(4)]

    calls: list[Callable[[], Any]] = []
    expected: list[int] = []
    for n in range(6):
        calls.append(lambda n=n: signup(LiveClient(live), f"new_{n:04d}"))
        expected.append(201)
    for _ in range(6):
        calls.append(lambda: login(LiveClient(live), "busy_001"))
        expected.append(200)
    for _ in range(4):
        calls.append(lambda: login(LiveClient(live), "busy_001", "Wrong!pass1"))
        expected.append(401)
    for n in range(4):
        calls.append(
            lambda n=n: LiveClient(live).patch(
                "/auth/me", headers=member.headers, json={"name": f"Busy {n}"}
            )
        )
        expected.append(200)
    for tokens in sessions[:2]:
        body = {"refresh_token": tokens["refresh_token"]}
        calls.append(lambda body=body: LiveClient(live).post("/auth/refresh", json=body))
        expected.append(200)
    for tokens in sessions[2:]:
        body = {"refresh_token": tokens["refresh_token"]}
        calls.append(lambda body=body: LiveClient(live).post("/auth/logout", json=body))
        expected.append(204)

    responses = all_at_once(calls)
    assert [r.status_code for r in responses] == expected, [r.text for r in responses]


def test_one_second_factor_code_logs_in_once_however_many_present_it(
    live: str, accounts: AccountFactory
) -> None:
    """The conditional UPDATE of the account's last used step (of the recovery code's row)
    lets exactly one of concurrent verifies with one code through, on separate logins. Five
    of them: the four losers' wrong codes stay under the lockout's five."""
    setup = LiveClient(live)
    for username, kind in (("race_totp", "totp"), ("race_recovery", "recovery")):
        enrolled = enable_mfa(setup, accounts.logged_in(setup, username).headers)
        code = totp_code(enrolled["secret"], 1) if kind == "totp" else enrolled["recovery_codes"][0]
        tokens = [mfa_token(setup, username) for _ in range(5)]
        responses = all_at_once(
            [
                lambda token=token, code=code: verify_mfa(LiveClient(live), token, code)
                for token in tokens
            ]
        )
        assert sorted(r.status_code for r in responses) == [200] + [401] * 4, kind


def test_one_mfa_token_logs_in_once(live: str, accounts: AccountFactory) -> None:
    setup = LiveClient(live)
    account = accounts.logged_in(setup, "race_mfa2")
    enrolled = enable_mfa(setup, account.headers)
    token = mfa_token(setup, "race_mfa2")
    codes = [totp_code(enrolled["secret"], 1), *enrolled["recovery_codes"][:4]]
    responses = all_at_once(
        [lambda code=code: verify_mfa(LiveClient(live), token, code) for code in codes]
    )
    assert sorted(r.status_code for r in responses) == [200] + [401] * 4
    # The losers' codes were not used up.
    left = setup.get("/auth/mfa", headers=account.headers).json()["recovery_codes_left"]
    assert left >= 9
