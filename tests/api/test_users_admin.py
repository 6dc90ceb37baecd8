"""Users and administration: /users and /admin, the member 403 table, the last-admin rule."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.models import Image, User
from tests.support.accounts import (
    ADMIN_USERNAME,
    AccountFactory,
    bearer,
    login,
    login_headers,
    signup,
)
from tests.support.databases import app_session, statements_run
from tests.support.events import app_events_settled, wait_for_relay_idle
from tests.support.images import upload_image


def _patch(client: TestClient, headers: dict[str, str], user_id: int, **body: Any) -> Any:
    return client.patch(f"/users/{user_id}", json=body, headers=headers)


def _request_statement(statement: str) -> bool:
    """Not transaction control, and not the event relay's (it works in the background)."""
    if statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
        return False
    return "event_outbox" not in statement and "handled_events" not in statement


@contextmanager
def counted_queries(client: TestClient) -> Iterator[list[str]]:
    """Every SQL statement a request runs inside the block (once the relay is idle)."""
    wait_for_relay_idle(client)
    with statements_run(client, _request_statement) as statements:
        yield statements


def test_admin_lists_users_newest_first_with_search_and_filters(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    for username, name in (
        ("alice_w", "Alice Wonder"),
        ("alicex", "Alice Other"),
        ("bobby", "Bob Builder"),
    ):
        accounts.create(username, name=name)

    everyone = admin_client.get("/users", headers=admin).json()
    assert everyone["total"] == 4
    assert [u["username"] for u in everyone["items"]] == [
        "bobby",
        "alicex",
        "alice_w",
        ADMIN_USERNAME,
    ]
    first = everyone["items"][0]
    # UserOut, plus when the account was deleted; nothing secret.
    user_out = admin_client.get("/auth/me", headers=admin).json()
    assert set(first) == set(user_out) | {"deleted_at"}
    assert "password_hash" not in first

    def usernames(**params: Any) -> list[str]:
        response = admin_client.get("/users", params=params, headers=admin)
        assert response.status_code == 200, response.text
        return [u["username"] for u in response.json()["items"]]

    assert usernames(q="ALICE") == ["alicex", "alice_w"]  # username, case-insensitively
    assert usernames(q="builder") == ["bobby"]  # name
    assert usernames(q="alicex@EXAMPLE") == ["alicex"]  # email
    assert usernames(q="e_w") == ["alice_w"]  # `_` is literal, not a LIKE wildcard
    assert usernames(q="100%") == []  # so is `%`
    assert usernames(role="admin") == [ADMIN_USERNAME]
    assert usernames(role="member", q="alice") == ["alicex", "alice_w"]

    page = admin_client.get("/users", params={"limit": 2, "offset": 1}, headers=admin).json()
    assert (page["total"], page["limit"], page["offset"]) == (4, 2, 1)
    assert [u["username"] for u in page["items"]] == ["alicex", "alice_w"]

    bobby_id = everyone["items"][0]["id"]
    assert _patch(admin_client, admin, bobby_id, is_active=False).status_code == 200
    assert usernames(is_active=False) == ["bobby"]
    assert "bobby" not in usernames(is_active=True)

    assert admin_client.get("/users", params={"role": "owner"}, headers=admin).status_code == 422
    assert admin_client.get("/users", params={"limit": 101}, headers=admin).status_code == 422


def test_listing_users_costs_the_same_queries_for_any_number_of_rows(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    with counted_queries(admin_client) as few:
        assert admin_client.get("/users", headers=admin).json()["total"] == 1
    for index in range(6):
        accounts.create(f"user{index:02d}")
    with counted_queries(admin_client) as many:
        assert admin_client.get("/users", headers=admin).json()["total"] == 7
    assert len(many) == len(few)


def test_get_user_is_self_or_admin(admin_client: TestClient, accounts: AccountFactory) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    other = accounts.logged_in(admin_client, "member2")
    member_id = member.user.id

    own = admin_client.get(f"/users/{member_id}", headers=member.headers)
    assert own.status_code == 200
    assert own.json()["username"] == "member1"
    assert admin_client.get(f"/users/{member_id}", headers=admin).json()["id"] == member_id

    forbidden = admin_client.get(f"/users/{member_id}", headers=other.headers)
    assert forbidden.status_code == 403
    assert "member1" not in forbidden.text
    # A member cannot probe which ids exist: unknown ids are 403 too, only admins see 404.
    assert admin_client.get("/users/99999", headers=other.headers).status_code == 403
    assert admin_client.get("/users/99999", headers=admin).status_code == 404
    assert admin_client.get(f"/users/{member_id}").status_code == 401


MEMBER_FORBIDDEN = [
    ("GET", "/users", None),
    ("GET", "/users/{other}", None),
    ("PATCH", "/users/{other}", {"role": "member"}),
    ("PATCH", "/users/{self}", {"role": "admin"}),
    ("PATCH", "/users/{self}", {"is_active": True}),
    ("DELETE", "/users/{other}", None),
    ("GET", "/admin/login-history", None),
    ("GET", "/admin/stats", None),
    ("GET", "/admin/audit-log", None),
]


def test_member_gets_403_on_every_admin_route_and_401_without_credentials(
    admin_client: TestClient,
    accounts: AccountFactory,
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    admin_id = admin_client.get("/auth/me", headers=admin).json()["id"]
    ids = {"self": member.user.id, "other": admin_id}

    for method, template, body in MEMBER_FORBIDDEN:
        path = template.format(**ids)
        response = admin_client.request(method, path, json=body, headers=member.headers)
        assert response.status_code == 403, (method, path, response.text)
        assert isinstance(response.json()["detail"], str)
        anonymous = admin_client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path)
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"

    me = admin_client.get("/auth/me", headers=member.headers).json()
    assert me["role"] == "member"
    assert me["is_active"] is True
    assert admin_client.get(f"/users/{admin_id}", headers=admin).json()["role"] == "admin"


def test_admin_changes_role_and_the_change_applies_at_once(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    assert admin_client.get("/admin/stats", headers=member.headers).status_code == 403

    promoted = _patch(admin_client, admin, member_id, role="admin")
    assert promoted.status_code == 200
    assert promoted.json()["role"] == "admin"
    # The role is read from the database, not the token: the same token is admin now...
    assert admin_client.get("/admin/stats", headers=member.headers).status_code == 200

    demoted = _patch(admin_client, admin, member_id, role="member")
    assert demoted.json()["role"] == "member"
    # ...and a member again at once.
    assert admin_client.get("/admin/stats", headers=member.headers).status_code == 403

    unchanged = _patch(admin_client, admin, member_id)
    assert unchanged.status_code == 200
    assert unchanged.json()["role"] == "member"


def test_patch_rejects_bad_input_and_unknown_users(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    assert _patch(admin_client, admin, 99999, role="admin").status_code == 404
    # Ids beyond the integer column are a 422, not a driver overflow.
    assert _patch(admin_client, admin, 2**31, role="admin").status_code == 422
    assert admin_client.get("/users/0", headers=admin).status_code == 422
    assert admin_client.delete(f"/users/{2**63}", headers=admin).status_code == 422
    too_big = admin_client.get("/admin/audit-log", params={"actor_id": 2**63}, headers=admin)
    assert too_big.status_code == 422
    assert _patch(admin_client, admin, member_id, role="owner").status_code == 422
    assert _patch(admin_client, admin, member_id, is_active="maybe").status_code == 422
    extra = _patch(admin_client, admin, member_id, username="renamed")
    assert extra.status_code == 422
    assert extra.json()["detail"][0]["loc"] == ["body", "username"]


def test_deactivation_revokes_sessions_and_api_keys_at_once(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    key = admin_client.post("/api-keys", json={"name": "ci"}, headers=member.headers).json()

    deactivated = _patch(admin_client, admin, member_id, is_active=False)
    assert deactivated.status_code == 200
    assert deactivated.json()["is_active"] is False

    assert admin_client.get("/auth/me", headers=member.headers).status_code == 401
    refresh = admin_client.post(
        "/auth/refresh", json={"refresh_token": member.tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert admin_client.get("/images", headers={"X-API-Key": key["key"]}).status_code == 401
    assert login(admin_client, "member1").status_code == 403

    reactivated = _patch(admin_client, admin, member_id, is_active=True)
    assert reactivated.json()["is_active"] is True
    assert login(admin_client, "member1").status_code == 200
    # What deactivation revoked stays revoked.
    assert admin_client.get("/auth/me", headers=member.headers).status_code == 401
    assert admin_client.get("/images", headers={"X-API-Key": key["key"]}).status_code == 401
    listed = admin_client.get("/api-keys", headers=login_headers(admin_client, "member1")).json()
    assert [k["revoked"] for k in listed] == [True]


def test_last_active_admin_cannot_be_demoted_deactivated_or_deleted(
    admin_client: TestClient,
    accounts: AccountFactory,
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    admin_id = admin_client.get("/auth/me", headers=admin).json()["id"]

    for body in ({"role": "member"}, {"is_active": False}, {"role": "member", "is_active": False}):
        refused = _patch(admin_client, admin, admin_id, **body)
        assert refused.status_code == 409, body
        assert "last active administrator" in refused.json()["detail"]
    assert admin_client.delete(f"/users/{admin_id}", headers=admin).status_code == 409
    me = admin_client.get("/auth/me", headers=admin).json()
    assert (me["role"], me["is_active"]) == ("admin", True)

    # An inactive admin does not count: promoting one still leaves the rule in force.
    second = accounts.logged_in(admin_client, "second")
    second_id = second.user.id
    _patch(admin_client, admin, second_id, role="admin", is_active=False)
    assert _patch(admin_client, admin, admin_id, role="member").status_code == 409

    # With another active admin, either may step down, but not both.
    _patch(admin_client, admin, second_id, is_active=True)
    second_headers = login_headers(admin_client, "second")
    assert _patch(admin_client, admin, admin_id, role="member").status_code == 200
    assert _patch(admin_client, second_headers, second_id, role="member").status_code == 409
    assert _patch(admin_client, second_headers, admin_id, role="admin").status_code == 200
    # Demoting a member or an inactive admin is never refused.
    assert _patch(admin_client, admin, second_id, is_active=False).status_code == 200
    assert _patch(admin_client, admin, second_id, role="member").status_code == 200


def test_two_admins_demoting_each_other_at_once_leave_one_admin(
    admin_client: TestClient, database_url: str, accounts: AccountFactory
) -> None:
    """The admin rows are locked before the count, so concurrent demotions serialise."""
    if database_url.startswith("sqlite"):
        # SQLite lets one writer in at a time; the loser gets "database is locked" instead of
        # waiting (its transaction began with a read), so the race is PostgreSQL's to prove.
        pytest.skip("concurrent writers are PostgreSQL's case")
    admin = login_headers(admin_client, ADMIN_USERNAME)
    admin_id = admin_client.get("/auth/me", headers=admin).json()["id"]
    second = accounts.logged_in(admin_client, "second")
    second_id = second.user.id
    for _ in range(3):
        _patch(admin_client, admin, second_id, role="admin")

        def demote(caller: tuple[dict[str, str], int]) -> int:
            headers, user_id = caller
            return _patch(admin_client, headers, user_id, role="member").status_code

        with ThreadPoolExecutor(2) as pool:
            codes = sorted(pool.map(demote, [(admin, admin_id), (second.headers, second_id)]))
        assert codes == [200, 409]
        with app_session(admin_client) as db:
            admin_ids = db.scalars(select(User.id).where(User.role == "admin")).all()
        assert len(admin_ids) == 1
        # Put the first admin back for the next round (a no-op when it was the one left).
        remaining = admin if admin_ids[0] == admin_id else second.headers
        assert _patch(admin_client, remaining, admin_id, role="admin").status_code == 200


def test_admin_sees_everyones_login_history_with_filters(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    accounts.logged_in(admin_client, "member1")
    assert login(admin_client, "member1", "Wr0ng!pass").status_code == 401
    assert login(admin_client, "ghost_user").status_code == 401

    history = admin_client.get("/admin/login-history", headers=admin).json()
    attempted = [e["username_attempted"] for e in history["items"]]
    assert attempted[:3] == ["ghost_user", "member1", "member1"]
    assert ADMIN_USERNAME in attempted
    assert history["total"] == len(attempted) == 4
    own_history = admin_client.get("/auth/login-history", headers=admin).json()
    assert set(history["items"][0]) == set(own_history["items"][0])  # the same LoginEvent

    def events(**params: Any) -> list[tuple[str, bool]]:
        response = admin_client.get("/admin/login-history", params=params, headers=admin)
        return [(e["username_attempted"], e["success"]) for e in response.json()["items"]]

    assert events(username="MEMBER1") == [("member1", False), ("member1", True)]
    assert events(username="member1", success=True) == [("member1", True)]
    assert events(success=False) == [("ghost_user", False), ("member1", False)]
    limited = admin_client.get("/admin/login-history", params={"limit": 1}, headers=admin).json()
    assert (len(limited["items"]), limited["total"]) == (1, 4)


def test_admin_stats_counts_everything_with_a_fixed_number_of_queries(
    admin_client: TestClient,
    accounts: AccountFactory,
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    with counted_queries(admin_client) as queries_before:
        before = admin_client.get("/admin/stats", headers=admin)
    assert before.status_code == 200
    assert before.json() == {
        "users": 1,
        "active_users": 1,
        "deleted_users": 0,
        "images": 0,
        "jobs_by_status": {"queued": 0, "running": 0, "done": 0, "failed": 0},
        "logins_24h": 1,
        "failed_logins_24h": 0,
    }

    first = accounts.logged_in(admin_client, "member1")
    second = accounts.logged_in(admin_client, "member2")
    accounts.logged_in(admin_client, "member3")
    login(admin_client, "member1", "Wr0ng!pass")
    login(admin_client, "nobody_here")
    _patch(admin_client, admin, second.user.id, is_active=False)
    admin_client.delete(f"/users/{first.user.id}", headers=first.headers)

    with counted_queries(admin_client) as queries_after:
        after = admin_client.get("/admin/stats", headers=admin).json()
    assert after["users"] == 3  # admin, member2, member3 (member1 is deleted)
    assert after["active_users"] == 2  # admin, member3
    assert after["deleted_users"] == 1
    assert after["logins_24h"] == 4  # the admin and three members
    assert after["failed_logins_24h"] == 2
    assert len(queries_after) == len(queries_before)


def test_member_deletes_own_account_and_everything_stops_working(
    admin_client: TestClient,
    accounts: AccountFactory,
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    member_id = member.user.id
    second_login = login(admin_client, "member1").json()
    key = admin_client.post("/api-keys", json={"name": "ci"}, headers=member.headers).json()
    assert admin_client.get("/images", headers={"X-API-Key": key["key"]}).status_code == 200

    assert admin_client.delete(f"/users/{member_id}", headers=member.headers).status_code == 204

    for tokens in (member.tokens, second_login):
        assert (
            admin_client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
        )
        refreshed = admin_client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert admin_client.get("/images", headers={"X-API-Key": key["key"]}).status_code == 401
    assert login(admin_client, "member1").status_code == 403

    # Username and email stay taken.
    assert signup(admin_client, "member1", email="fresh@example.com").status_code == 409
    assert signup(admin_client, "MEMBER1", email="fresh@example.com").status_code == 409
    assert signup(admin_client, "newname", email="member1@example.com").status_code == 409

    shown = admin_client.get(f"/users/{member_id}", headers=admin).json()
    assert shown["is_active"] is False
    assert shown["deleted_at"] is not None
    deleted_list = admin_client.get("/users", params={"deleted": True}, headers=admin).json()
    assert [u["username"] for u in deleted_list["items"]] == ["member1"]
    existing = admin_client.get("/users", params={"deleted": False}, headers=admin).json()
    assert [u["username"] for u in existing["items"]] == [ADMIN_USERNAME]

    # Deleting again changes nothing; a deleted account cannot be revived by PATCH.
    assert admin_client.delete(f"/users/{member_id}", headers=admin).status_code == 204
    revived = _patch(admin_client, admin, member_id, is_active=True)
    assert revived.status_code == 409
    assert "deleted" in revived.json()["detail"]


def test_admin_deletes_a_member_but_members_cannot_delete_others(
    admin_client: TestClient,
    accounts: AccountFactory,
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    other = accounts.logged_in(admin_client, "member2")
    member_id = member.user.id

    assert admin_client.delete(f"/users/{member_id}", headers=other.headers).status_code == 403
    assert admin_client.delete("/users/1", headers=other.headers).status_code == 403
    assert admin_client.get("/auth/me", headers=member.headers).status_code == 200

    assert admin_client.delete(f"/users/{member_id}", headers=admin).status_code == 204
    assert admin_client.get("/auth/me", headers=member.headers).status_code == 401
    assert admin_client.get("/auth/me", headers=other.headers).status_code == 200
    assert admin_client.delete("/users/99999", headers=admin).status_code == 404


def test_an_admin_may_delete_itself_while_another_admin_remains(
    admin_client: TestClient,
    accounts: AccountFactory,
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    second = accounts.logged_in(admin_client, "second")
    _patch(admin_client, admin, second.user.id, role="admin")
    admin_id = admin_client.get("/auth/me", headers=admin).json()["id"]

    assert admin_client.delete(f"/users/{admin_id}", headers=admin).status_code == 204
    second_admin = login_headers(admin_client, "second")
    remaining = admin_client.get("/users", params={"role": "admin"}, headers=second_admin).json()
    assert [(u["username"], u["is_active"]) for u in remaining["items"]] == [
        ("second", True),
        (ADMIN_USERNAME, False),
    ]
    second_id = second.user.id
    assert admin_client.delete(f"/users/{second_id}", headers=second_admin).status_code == 409


DECLARED_ERRORS = [
    ("/users", "get", {"401", "403", "422"}),
    ("/users/{user_id}", "get", {"401", "403", "404"}),
    ("/users/{user_id}", "patch", {"401", "403", "404", "409", "422"}),
    ("/users/{user_id}", "delete", {"401", "403", "404", "409"}),
    ("/users/{user_id}/password-reset", "post", {"401", "403", "404", "422"}),
    ("/users/{user_id}/mfa", "delete", {"401", "403", "404"}),
    ("/admin/login-history", "get", {"401", "403", "422"}),
    ("/admin/stats", "get", {"401", "403"}),
    ("/admin/audit-log", "get", {"401", "403", "422"}),
]


def test_admin_routes_declare_their_errors_and_bearer_only_in_openapi(
    client: TestClient,
) -> None:
    document = client.get("/openapi.json").json()
    for path, method, codes in DECLARED_ERRORS:
        operation = document["paths"][path][method]
        assert codes <= set(operation["responses"]), (path, method)
        assert operation["security"] == [{"Bearer": []}], (path, method)


def _upload_png(client: TestClient, headers: dict[str, str]) -> int:
    response = upload_image(client, headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def _stored_files(client: TestClient, owner_id: int) -> list[Path]:
    storage_dir = Path(client.app.state.settings.storage_dir)
    with app_session(client) as db:
        keys = db.scalars(select(Image.storage_key).where(Image.owner_id == owner_id)).all()
    return [storage_dir / key for key in keys]


def test_deleting_an_account_deletes_its_images_and_files_only(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    admin = login_headers(admin_client, ADMIN_USERNAME)
    member = accounts.logged_in(admin_client, "member1")
    neighbour = accounts.logged_in(admin_client, "member2")
    member_id = member.user.id
    key = admin_client.post("/api-keys", json={"name": "ci"}, headers=member.headers).json()
    uploaded = [_upload_png(admin_client, member.headers) for _ in range(2)]
    uploaded.append(_upload_png(admin_client, {"X-API-Key": key["key"]}))
    kept = _upload_png(admin_client, neighbour.headers)
    files = _stored_files(admin_client, member_id)
    assert len(files) == 3
    assert all(path.is_file() for path in files)
    assert admin_client.get("/admin/stats", headers=admin).json()["images"] == 4

    assert admin_client.delete(f"/users/{member_id}", headers=admin).status_code == 204

    assert _stored_files(admin_client, member_id) == []  # the rows at once
    app_events_settled(admin_client)  # the files with the user.deleted event
    assert not any(path.exists() for path in files)
    assert admin_client.get("/admin/stats", headers=admin).json()["images"] == 1
    assert admin_client.get(f"/images/{kept}/content", headers=neighbour.headers).content
    assert all(path.is_file() for path in _stored_files(admin_client, neighbour.user.id))
    for image_id in uploaded:
        gone = admin_client.get(f"/images/{image_id}", headers=neighbour.headers)
        assert gone.status_code == 404
    audit = admin_client.get(
        "/admin/audit-log", params={"action": "user.deleted"}, headers=admin
    ).json()["items"]
    assert audit[0]["details"]["images_deleted"] == 3
    assert audit[0]["details"]["by_self"] is False
