"""Two-factor authentication and administration: the admin reset, REQUIRE_ADMIN_MFA, and
each user's 2FA state in the admin's user list."""

from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.models import AuditEntry, OutboxEvent
from tests.support.accounts import (
    ADMIN_USERNAME,
    AccountFactory,
    admin_settings,
    bearer,
    login,
    login_headers,
)
from tests.support.databases import app_session, fresh_redis_database
from tests.support.mfa import enable_mfa, mfa_token, totp_code, verify_mfa

ADMIN_MFA_REQUIRED = {"detail": "Two-factor authentication required for administrators"}


def test_admin_resets_a_users_2fa(admin_client: TestClient, accounts: AccountFactory) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "mfa_a01")
    other = accounts.logged_in(admin_client, "mfa_a02")
    member_id = member.user.id
    enrolled = enable_mfa(admin_client, member.headers)
    pending_login = mfa_token(admin_client, "mfa_a01")

    listed = admin_client.get("/users", headers=admin, params={"q": "mfa_a0"}).json()
    assert {u["username"]: u["mfa_enabled"] for u in listed["items"]} == {
        "mfa_a01": True,
        "mfa_a02": False,
    }

    assert admin_client.delete(f"/users/{member_id}/mfa", headers=other.headers).status_code == 403
    assert admin_client.delete(f"/users/{member_id}/mfa", headers=member.headers).status_code == 403
    assert admin_client.delete("/users/99999/mfa", headers=admin).status_code == 404
    assert admin_client.delete(f"/users/{member_id}/mfa").status_code == 401

    assert admin_client.delete(f"/users/{member_id}/mfa", headers=admin).status_code == 204
    assert admin_client.get(f"/users/{member_id}", headers=admin).json()["mfa_enabled"] is False
    status = admin_client.get("/auth/mfa", headers=member.headers).json()
    assert status == {
        "enabled": False,
        "enabled_at": None,
        "recovery_codes_left": 0,
        "pending": False,
    }
    # The login waiting for its second step is dead, and the next one needs no code.
    assert verify_mfa(admin_client, pending_login, enrolled["recovery_codes"][0]).status_code == 401
    assert "access_token" in login(admin_client, "mfa_a01").json()

    with app_session(admin_client) as db:
        entry = db.scalars(select(AuditEntry).where(AuditEntry.action == "mfa_reset")).one()
    assert entry.target_type == "user"
    assert entry.target_id == member_id
    assert entry.details == {"username": "mfa_a01", "was_enabled": True}
    audit = admin_client.get("/admin/audit-log", headers=admin, params={"action": "mfa_reset"})
    assert audit.json()["total"] == 1
    with app_session(admin_client) as db:
        event = db.scalars(select(OutboxEvent).order_by(OutboxEvent.id.desc())).first()
    assert event is not None
    assert (event.type, event.data) == (
        "user.mfa_disabled",
        {"user_id": member_id, "reason": "admin_reset", "actor_id": entry.actor_id},
    )

    # Resetting an account without 2FA is audited, but disables nothing: no event.
    assert admin_client.delete(f"/users/{member_id}/mfa", headers=admin).status_code == 204
    with app_session(admin_client) as db:
        assert db.scalar(select(func.max(OutboxEvent.id))) == event.id
        resets = db.scalars(select(AuditEntry.details).where(AuditEntry.action == "mfa_reset"))
        assert [details["was_enabled"] for details in resets] == [True, False]


def _promote(client: TestClient, admin: dict[str, str], user_id: int) -> None:
    response = client.patch(f"/users/{user_id}", json={"role": "admin"}, headers=admin)
    assert response.status_code == 200, response.text


def test_require_admin_mfa_refuses_admins_without_a_second_factor(
    make_client, accounts: AccountFactory
) -> None:
    with make_client(**admin_settings(), require_admin_mfa=True) as client:
        admin = login_headers(client, ADMIN_USERNAME)
        for path in (
            "/users",
            "/users/1",
            "/admin/stats",
            "/admin/login-history",
            "/admin/events",
            "/admin/operations",
        ):
            refused = client.get(path, headers=admin)
            assert refused.status_code == 403, path
            assert refused.json() == ADMIN_MFA_REQUIRED
        assert client.delete("/users/1/mfa", headers=admin).json() == ADMIN_MFA_REQUIRED
        # Members are not concerned, and admins can still enrol.
        member = accounts.logged_in(client, "mfa_a03")
        assert client.get(f"/users/{member.user.id}", headers=member.headers).status_code == 200
        assert client.get("/users", headers=member.headers).json() == {
            "detail": "Administrator role required"
        }

        enrolled = enable_mfa(client, admin)
        # This access token still says "pwd" only.
        assert client.get("/users", headers=admin).status_code == 403
        token = mfa_token(client, ADMIN_USERNAME)
        pair = verify_mfa(client, token, totp_code(enrolled["secret"], 1)).json()
        assert client.get("/users", headers=bearer(pair["access_token"])).status_code == 200
        refreshed = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert (
            client.get("/admin/stats", headers=bearer(refreshed.json()["access_token"])).status_code
            == 200
        )


def test_enrolling_upgrades_the_current_admin_session(make_client) -> None:
    with make_client(**admin_settings(), require_admin_mfa=True) as client:
        response = login(client, ADMIN_USERNAME)
        tokens = response.json()
        enable_mfa(client, bearer(tokens["access_token"]))
        refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refreshed.status_code == 200
        assert (
            client.get("/users", headers=bearer(refreshed.json()["access_token"])).status_code
            == 200
        )


def test_admin_mfa_is_not_required_by_default(admin_client: TestClient) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    assert admin_client.get("/users", headers=admin).status_code == 200
    assert admin_client.get("/admin/stats", headers=admin).status_code == 200


def test_a_promoted_member_needs_a_second_factor_too(make_client, accounts: AccountFactory) -> None:
    with make_client(**admin_settings(), require_admin_mfa=True) as client:
        admin_tokens = login(client, ADMIN_USERNAME).json()
        enable_mfa(client, bearer(admin_tokens["access_token"]))
        refreshed = client.post(
            "/auth/refresh", json={"refresh_token": admin_tokens["refresh_token"]}
        )
        admin = bearer(refreshed.json()["access_token"])
        member = accounts.logged_in(client, "mfa_a04")
        _promote(client, admin, member.user.id)
        assert client.get("/users", headers=member.headers).json() == ADMIN_MFA_REQUIRED


def test_two_factor_changes_show_at_once_with_the_cache_on(
    make_client, accounts: AccountFactory
) -> None:
    """The admin list and /auth/me come from the Redis cache; 2FA lives in its own table, and
    its changes invalidate what the cache holds for the account."""
    with (
        fresh_redis_database() as cache_url,
        make_client(cache_url=cache_url, **admin_settings()) as client,
    ):
        admin = login_headers(client, ADMIN_USERNAME)
        member = accounts.logged_in(client, "mfa_c01")

        def listed() -> bool:
            page = client.get("/users", params={"q": "mfa_c01"}, headers=admin).json()
            return page["items"][0]["mfa_enabled"]

        def me() -> bool:
            return client.get("/auth/me", headers=member.headers).json()["mfa_enabled"]

        assert (listed(), me()) == (False, False)  # now cached
        assert (listed(), me()) == (False, False)
        enable_mfa(client, member.headers)
        assert (listed(), me()) == (True, True)
        assert client.delete(f"/users/{member.user.id}/mfa", headers=admin).status_code == 204
        assert (listed(), me()) == (False, False)
