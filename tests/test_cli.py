"""Operator CLI: `create-admin` (idempotent, policy-checked, no default password) and a
bounded `wait-for-db`."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, update
from sqlalchemy.orm import Session

from api.app import create_app
from api.cli import main
from api.core.config import Settings
from api.models import AuditEntry, Role, User
from tests.support.accounts import TEST_JWT_SECRET, AccountFactory, login
from tests.support.mfa import enable_mfa

ADMIN_PASSWORD = "Adm1n!secret"


@pytest.fixture
def bare_cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """The CLI reads settings from the environment: none from outside, no stray `.env`."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_JWT_SECRET)
    monkeypatch.setenv("BCRYPT_ROUNDS", "4")
    return monkeypatch


@pytest.fixture
def cli_env(bare_cli_env: pytest.MonkeyPatch, database_url: str) -> pytest.MonkeyPatch:
    """As bare_cli_env, on the test database (each backend in turn)."""
    bare_cli_env.setenv("DATABASE_URL", database_url)
    return bare_cli_env


def _set_admin(env: pytest.MonkeyPatch, password: str | None = ADMIN_PASSWORD) -> None:
    env.setenv("ADMIN_USERNAME", "root_admin")
    env.setenv("ADMIN_EMAIL", "root@example.com")
    if password is not None:
        env.setenv("ADMIN_PASSWORD", password)


def _users(database_url: str) -> list[tuple[str, str, bool]]:
    engine = create_engine(database_url)
    try:
        with Session(engine) as db:
            rows = db.execute(select(User.username, User.role, User.is_active).order_by(User.id))
            return [tuple(row) for row in rows]
    finally:
        engine.dispose()


def test_create_admin_creates_the_admin_once(
    cli_env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _set_admin(cli_env)
    assert main(["create-admin"]) == 0
    first = capsys.readouterr().out
    assert "admin ready" in first and "root_admin" in first
    assert main(["create-admin"]) == 0
    assert capsys.readouterr().out == first
    assert _users(database_url) == [("root_admin", "admin", True)]
    assert ADMIN_PASSWORD not in first


def test_the_created_admin_logs_in_with_the_configured_password(
    cli_env: pytest.MonkeyPatch, settings: Settings
) -> None:
    _set_admin(cli_env)
    assert main(["create-admin"]) == 0
    with TestClient(create_app(settings)) as client:
        response = login(client, "root_admin", ADMIN_PASSWORD)
        assert response.status_code == 200
        me = client.get(
            "/auth/me", headers={"Authorization": f"Bearer {response.json()['access_token']}"}
        )
        assert me.json()["role"] == "admin"


def test_create_admin_never_promotes_an_existing_member(
    cli_env: pytest.MonkeyPatch,
    database_url: str,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    accounts: AccountFactory,
) -> None:
    # Someone signed up under the configured name first: they must not become an admin.
    accounts.create("root_admin", email="squatter@example.com")
    _set_admin(cli_env)
    assert main(["create-admin"]) == 0
    assert "not an active admin" in capsys.readouterr().err
    assert _users(database_url) == [("root_admin", "member", True)]
    with TestClient(create_app(settings)) as client:
        assert login(client, "root_admin", ADMIN_PASSWORD).status_code == 401


def test_create_admin_does_not_revive_a_deactivated_admin(
    cli_env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _set_admin(cli_env)
    assert main(["create-admin"]) == 0
    engine = create_engine(database_url)
    with Session(engine) as db:
        db.execute(update(User).values(is_active=False))
        db.commit()
    engine.dispose()
    capsys.readouterr()
    assert main(["create-admin"]) == 0
    assert "not an active admin" in capsys.readouterr().err
    assert _users(database_url) == [("root_admin", "admin", False)]


def test_create_admin_refuses_a_password_breaking_the_policy(
    cli_env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    _set_admin(cli_env, password="weakpassword")
    assert main(["create-admin"]) == 2
    error = capsys.readouterr().err
    assert "ADMIN_PASSWORD does not meet the password policy" in error
    assert "uppercase" in error
    assert "weakpassword" not in error
    assert _users(database_url) == []


@pytest.mark.parametrize(
    ("variable", "value"), [("ADMIN_USERNAME", "bad-name"), ("ADMIN_EMAIL", "not-an-email")]
)
def test_create_admin_refuses_an_invalid_username_or_email(
    cli_env: pytest.MonkeyPatch,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    _set_admin(cli_env)
    cli_env.setenv(variable, value)
    assert main(["create-admin"]) == 2
    assert variable in capsys.readouterr().err
    assert _users(database_url) == []


def test_create_admin_has_no_default_password(
    cli_env: pytest.MonkeyPatch, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert Settings.model_fields["admin_password"].default is None
    _set_admin(cli_env, password=None)
    assert main(["create-admin"]) == 0
    assert "nothing to do" in capsys.readouterr().out
    assert _users(database_url) == []


def test_the_app_bootstraps_the_admin_at_start_up(make_settings, database_url: str) -> None:
    settings = make_settings(
        admin_username="root_admin", admin_email="root@example.com", admin_password=ADMIN_PASSWORD
    )
    for _ in range(2):
        with TestClient(create_app(settings)) as client:
            assert login(client, "root_admin", ADMIN_PASSWORD).status_code == 200
    assert _users(database_url) == [("root_admin", "admin", True)]


def test_wait_for_db_answers_at_once_when_reachable(
    cli_env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["wait-for-db", "--timeout", "5"]) == 0
    assert "reachable after 1 attempt" in capsys.readouterr().out


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung database server."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(16)
        yield server.getsockname()[1]


@pytest.mark.parametrize("target", ["refused", "silent"])
def test_wait_for_db_gives_up_after_its_timeout(
    bare_cli_env: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    silent_server: int,
    target: str,
) -> None:
    port = silent_server if target == "silent" else 1
    bare_cli_env.setenv("DATABASE_URL", f"postgresql+psycopg2://nobody@127.0.0.1:{port}/none")
    result: list[int] = []
    worker = threading.Thread(
        target=lambda: result.append(main(["wait-for-db", "--timeout", "1"])), daemon=True
    )
    worker.start()
    # Not a measurement: a generous bound that a hanging connect attempt would never meet.
    worker.join(timeout=60)
    assert not worker.is_alive(), "wait-for-db did not return"
    assert result == [1]
    assert "not reachable after" in capsys.readouterr().err


def test_reset_mfa_removes_an_accounts_two_factor_authentication(
    cli_env: pytest.MonkeyPatch,
    settings: Settings,
    accounts: AccountFactory,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """For the admin who lost the phone and the codes when no other admin can reset it."""
    with TestClient(create_app(settings)) as client:
        admin = accounts.logged_in(client, "lost_phone", role=Role.ADMIN)
        enable_mfa(client, admin.headers)
        assert login(client, "lost_phone").json()["mfa_required"] is True

        assert main(["reset-mfa", "lost_phone"]) == 0
        assert "two-factor authentication removed" in capsys.readouterr().out
        assert "access_token" in login(client, "lost_phone").json()
        with client.app.state.database.session() as db:
            entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "mfa_reset")).one()
        assert (entry.actor_id, entry.target_id) == (None, admin.user.id)

    assert main(["reset-mfa", "nobody_here"]) == 1
    assert "no account named 'nobody_here'" in capsys.readouterr().err
