"""The audit log: admin actions and API key events, who, when, from where; admins only."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.support.accounts import ADMIN_USERNAME, AccountFactory, login_headers

CLIENT_IP = "testclient"  # Starlette's TestClient peer address


def test_admin_actions_and_api_key_events_are_audited(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    admin_id = admin_client.get("/auth/me", headers=admin).json()["id"]
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    doomed = accounts.logged_in(admin_client, "doomed1")
    doomed_id = doomed.user.id

    key = admin_client.post("/api-keys", json={"name": "ci"}, headers=member.headers).json()
    assert admin_client.delete(f"/api-keys/{key['id']}", headers=member.headers).status_code == 204
    admin_client.patch(f"/users/{member_id}", json={"role": "admin"}, headers=admin)
    admin_client.patch(f"/users/{member_id}", json={"is_active": False}, headers=admin)
    admin_client.patch(f"/users/{member_id}", json={"is_active": True}, headers=admin)
    doomed_key = admin_client.post("/api-keys", json={"name": "x"}, headers=doomed.headers)
    admin_client.delete(f"/users/{doomed_id}", headers=doomed.headers)

    response = admin_client.get("/admin/audit-log", headers=admin)
    assert response.status_code == 200
    page = response.json()
    entries = page["items"]
    assert [(e["action"], e["actor_id"], e["target_type"], e["target_id"]) for e in entries] == [
        ("user.deleted", doomed_id, "user", doomed_id),
        ("api_key.created", doomed_id, "api_key", doomed_key.json()["id"]),
        ("user.activated", admin_id, "user", member_id),
        ("user.deactivated", admin_id, "user", member_id),
        ("user.role_changed", admin_id, "user", member_id),
        ("api_key.revoked", member_id, "api_key", key["id"]),
        ("api_key.created", member_id, "api_key", key["id"]),
    ]
    assert page["total"] == 7
    assert set(entries[0]) == {
        "id",
        "actor_id",
        "action",
        "target_type",
        "target_id",
        "ip_address",
        "details",
        "created_at",
    }
    assert all(e["ip_address"] == CLIENT_IP for e in entries)
    assert all(e["created_at"].endswith(("Z", "+00:00")) for e in entries)

    by_action = {e["action"]: e["details"] for e in entries}
    assert by_action["user.role_changed"] == {
        "username": "member1",
        "from": "member",
        "to": "admin",
    }
    # Deactivation revoked the member's login session (the API key was revoked before).
    assert by_action["user.deactivated"] == {
        "username": "member1",
        "sessions_revoked": 1,
        "api_keys_revoked": 0,
    }
    deleted = by_action["user.deleted"]
    assert deleted["by_self"] is True
    assert (deleted["sessions_revoked"], deleted["api_keys_revoked"]) == (1, 1)
    assert by_action["api_key.revoked"] == {"name": "ci", "prefix": key["prefix"]}
    created = next(e for e in entries if e["target_id"] == key["id"] and "created" in e["action"])
    assert created["details"]["prefix"] == key["prefix"]
    # Neither a key nor anything derived from its secret is ever written to the audit log.
    assert key["key"] not in response.text
    assert doomed_key.json()["key"] not in response.text
    assert key["key"].removeprefix(f"{key['prefix']}_") not in response.text


def test_audit_log_filters_and_pages(admin_client: TestClient, accounts: AccountFactory) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    admin_id = admin_client.get("/auth/me", headers=admin).json()["id"]
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    admin_client.post("/api-keys", json={"name": "one"}, headers=member.headers)
    admin_client.post("/api-keys", json={"name": "two"}, headers=admin)
    admin_client.patch(f"/users/{member_id}", json={"role": "admin"}, headers=admin)

    def actions(**params: Any) -> list[str]:
        response = admin_client.get("/admin/audit-log", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [e["action"] for e in response.json()["items"]]

    assert actions(action="api_key.created") == ["api_key.created", "api_key.created"]
    assert actions(actor_id=admin_id) == ["user.role_changed", "api_key.created"]
    assert actions(target_type="user", target_id=member_id) == ["user.role_changed"]
    assert actions(action="user.deleted") == []
    limited = admin_client.get("/admin/audit-log", params={"limit": 1, "offset": 1}, headers=admin)
    assert [e["action"] for e in limited.json()["items"]] == ["api_key.created"]
    assert limited.json()["total"] == 3
    bad = admin_client.get("/admin/audit-log", params={"actor_id": "me"}, headers=admin)
    assert bad.status_code == 422


def test_changes_that_change_nothing_are_not_audited(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    admin_client.patch(
        f"/users/{member_id}", json={"role": "member", "is_active": True}, headers=admin
    )
    key = admin_client.post("/api-keys", json={"name": "ci"}, headers=member.headers).json()
    admin_client.delete(f"/api-keys/{key['id']}", headers=member.headers)
    admin_client.delete(f"/api-keys/{key['id']}", headers=member.headers)

    entries = admin_client.get("/admin/audit-log", headers=admin).json()["items"]
    assert [e["action"] for e in entries] == ["api_key.revoked", "api_key.created"]
