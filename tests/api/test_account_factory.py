"""The test account factory writes rows the app takes for its own accounts: tests that use it
instead of sign-up rely on that."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.models import Role
from tests.support.accounts import AccountFactory, login


def test_a_written_account_logs_in_with_the_role_and_state_it_was_given(
    client: TestClient, accounts: AccountFactory
) -> None:
    admin = accounts.create("made_admin", role=Role.ADMIN, is_verified=True, name="Made Admin")
    me = client.get("/auth/me", headers=admin.login(client).headers).json()
    assert {k: me[k] for k in ("id", "username", "email", "name", "role", "is_verified")} == {
        "id": admin.id,
        "username": "made_admin",
        "email": "made_admin@example.com",
        "name": "Made Admin",
        "role": "admin",
        "is_verified": True,
    }
    assert me["is_active"] is True
    assert client.get("/admin/stats", headers=admin.login(client).headers).status_code == 200

    member = accounts.logged_in(client, "made_member", password="An0ther!pass")
    me = client.get("/auth/me", headers=member.headers).json()
    assert (me["role"], me["is_verified"]) == ("member", False)  # as after sign-up
    assert login(client, "made_member").status_code == 401  # not the default password


def test_an_inactive_written_account_is_refused_only_with_the_right_password(
    client: TestClient, accounts: AccountFactory
) -> None:
    idle = accounts.create("made_idle", is_active=False)
    assert login(client, idle.username, idle.password).status_code == 403
    assert login(client, idle.username, "Wrong!pass1").status_code == 401
