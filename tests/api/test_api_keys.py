"""API keys: /api-keys (Bearer only) and X-API-Key on image and job routes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.core.security import sha256_hex
from api.models import ApiKey, utcnow
from tests.support.accounts import AccountFactory, bearer
from tests.support.databases import app_session

KEY_ROUTES = ["/images", "/jobs"]


def _create(client: TestClient, headers: dict[str, str], **body: Any) -> dict[str, Any]:
    response = client.post("/api-keys", json={"name": "ci", **body}, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()


def _with_key(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_create_shows_the_key_once_and_lists_never_show_it(
    client: TestClient, accounts: AccountFactory
) -> None:
    owner = accounts.logged_in(client, "owner1")
    created = client.post(
        "/api-keys", json={"name": "nightly build", "expires_in_days": 30}, headers=owner.headers
    )
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    body = created.json()
    assert set(body) == {"id", "name", "prefix", "key", "created_at", "expires_at"}
    assert body["name"] == "nightly build"
    assert body["key"].startswith(body["prefix"] + "_")
    secret = body["key"][len(body["prefix"]) + 1 :]
    assert len(secret) >= 43  # 256 bits, URL-safe base64
    lifetime = _parse(body["expires_at"]) - _parse(body["created_at"])
    assert lifetime == timedelta(days=30)

    never = _create(client, owner.headers, name="forever")
    assert never["expires_at"] is None
    assert never["prefix"] != body["prefix"]

    listed = client.get("/api-keys", headers=owner.headers)
    assert listed.status_code == 200
    assert [k["name"] for k in listed.json()] == ["forever", "nightly build"]
    assert set(listed.json()[0]) == {
        "id",
        "name",
        "prefix",
        "created_at",
        "expires_at",
        "last_used_at",
        "revoked",
    }
    with app_session(client) as db:
        stored = db.scalar(select(ApiKey).where(ApiKey.id == body["id"]))
        assert stored is not None
        assert stored.key_hash == sha256_hex(body["key"])
        key_hash = stored.key_hash
    for text in (listed.text, client.get("/auth/me", headers=owner.headers).text):
        assert body["key"] not in text
        assert secret not in text
        assert key_hash not in text

    # Keys are private: another user sees none of them.
    other = accounts.logged_in(client, "other1")
    assert client.get("/api-keys", headers=other.headers).json() == []


def test_key_acts_as_its_owner_on_image_and_job_routes(
    client: TestClient, accounts: AccountFactory
) -> None:
    owner = accounts.logged_in(client, "owner1")
    key = _create(client, owner.headers)
    assert client.get("/api-keys", headers=owner.headers).json()[0]["last_used_at"] is None

    for path in KEY_ROUTES:
        response = client.get(path, headers=_with_key(key["key"]))
        assert response.status_code == 200, (path, response.text)
        assert response.json()["total"] == 0

    last_used = client.get("/api-keys", headers=owner.headers).json()[0]["last_used_at"]
    assert last_used is not None
    assert _parse(last_used) >= _parse(key["created_at"])


def test_one_key_serves_many_concurrent_requests(
    client: TestClient, accounts: AccountFactory
) -> None:
    """Every use writes last_used_at; on SQLite that write must wait for the lock, not fail."""
    owner = accounts.logged_in(client, "owner1")
    key = _create(client, owner.headers)["key"]

    def list_images(_: int) -> int:
        return client.get("/images", headers=_with_key(key)).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(list_images, range(40)))
    assert codes == [200] * 40
    assert client.get("/api-keys", headers=owner.headers).json()[0]["last_used_at"]


def test_key_never_works_on_auth_api_keys_or_admin_routes(
    admin_client: TestClient, accounts: AccountFactory
) -> None:
    owner = accounts.logged_in(admin_client, "owner1")
    owner_id = owner.user.id
    key = _create(admin_client, owner.headers)["key"]
    forbidden_to_keys = [
        ("GET", "/auth/me", None),
        ("PATCH", "/auth/me", {"name": "Renamed"}),
        ("GET", "/auth/sessions", None),
        ("GET", "/auth/login-history", None),
        ("POST", "/auth/logout-all", None),
        ("POST", "/auth/change-password", {"current_password": "x", "new_password": "y"}),
        ("GET", "/api-keys", None),
        ("POST", "/api-keys", {"name": "minted"}),
        ("DELETE", "/api-keys/1", None),
        ("GET", f"/users/{owner_id}", None),
        ("DELETE", f"/users/{owner_id}", None),
    ]
    for method, path, body in forbidden_to_keys:
        response = admin_client.request(method, path, json=body, headers=_with_key(key))
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"

    # Nothing happened: the account exists, no key was minted, none revoked.
    assert admin_client.get("/auth/me", headers=owner.headers).status_code == 200
    listed = admin_client.get("/api-keys", headers=owner.headers).json()
    assert [(k["name"], k["revoked"]) for k in listed] == [("ci", False)]


def test_expired_revoked_unknown_and_malformed_keys_are_401(
    client: TestClient, accounts: AccountFactory
) -> None:
    owner = accounts.logged_in(client, "owner1")
    expiring = _create(client, owner.headers, expires_in_days=1)
    revoked = _create(client, owner.headers)
    assert client.get("/images", headers=_with_key(expiring["key"])).status_code == 200

    with app_session(client) as db:
        row = db.get(ApiKey, expiring["id"])
        assert row is not None
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.commit()
    assert client.delete(f"/api-keys/{revoked['id']}", headers=owner.headers).status_code == 204

    valid_prefix_wrong_secret = revoked["prefix"] + "_" + "A" * 43
    for bad in (
        expiring["key"],
        revoked["key"],
        valid_prefix_wrong_secret,
        expiring["key"] + "x",
        "pgk_0000000000000000_" + "A" * 43,
        "not-a-key",
        "x" * 5000,
    ):
        response = client.get("/images", headers=_with_key(bad))
        assert response.status_code == 401, bad
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json() == {"detail": "Invalid, expired or revoked API key"}
    assert client.get("/images").status_code == 401

    listed = {k["id"]: k for k in client.get("/api-keys", headers=owner.headers).json()}
    assert listed[revoked["id"]]["revoked"] is True
    assert listed[expiring["id"]]["revoked"] is False


def test_a_bearer_token_decides_alone_when_both_are_sent(
    client: TestClient, accounts: AccountFactory
) -> None:
    owner = accounts.logged_in(client, "owner1")
    key = _create(client, owner.headers)["key"]
    both = {**owner.headers, **_with_key(key)}
    assert client.get("/images", headers=both).status_code == 200
    bad_token = {**bearer("not.a.jwt"), **_with_key(key)}
    assert client.get("/images", headers=bad_token).status_code == 401


def test_revoking_is_idempotent_and_limited_to_the_owner(
    client: TestClient, accounts: AccountFactory
) -> None:
    owner = accounts.logged_in(client, "owner1")
    other = accounts.logged_in(client, "other1")
    key = _create(client, owner.headers)

    assert client.delete(f"/api-keys/{key['id']}", headers=other.headers).status_code == 404
    assert client.get("/images", headers=_with_key(key["key"])).status_code == 200
    assert client.delete("/api-keys/99999", headers=owner.headers).status_code == 404
    assert client.delete(f"/api-keys/{2**31}", headers=owner.headers).status_code == 422
    assert client.delete(f"/api-keys/{key['id']}", headers=owner.headers).status_code == 204
    assert client.delete(f"/api-keys/{key['id']}", headers=owner.headers).status_code == 204
    assert client.get("/images", headers=_with_key(key["key"])).status_code == 401
    assert client.delete(f"/api-keys/{key['id']}").status_code == 401


def test_create_validates_its_input(client: TestClient, accounts: AccountFactory) -> None:
    owner = accounts.logged_in(client, "owner1")
    for body, field in (
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 101}, "name"),
        ({}, "name"),
        ({"name": "ci", "expires_in_days": 0}, "expires_in_days"),
        ({"name": "ci", "expires_in_days": 3651}, "expires_in_days"),
        ({"name": "ci", "expires_in_days": "soon"}, "expires_in_days"),
        ({"name": "ci", "scopes": ["admin"]}, "scopes"),
    ):
        response = client.post("/api-keys", json=body, headers=owner.headers)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"] == ["body", field], body
    assert client.post("/api-keys", json={"name": "ci"}).status_code == 401
    assert client.get("/api-keys", headers=owner.headers).json() == []


def test_swagger_offers_bearer_and_api_key(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["APIKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["APIKey"]["description"],
    }
    assert schemes["Bearer"]["type"] == "oauth2"

    def security(path: str, method: str = "get") -> list[dict[str, list[str]]]:
        return document["paths"][path][method]["security"]

    for path in KEY_ROUTES:
        assert {"Bearer": []} in security(path)
        assert {"APIKey": []} in security(path)
    for path, method in (("/auth/me", "get"), ("/api-keys", "get"), ("/api-keys", "post")):
        assert security(path, method) == [{"Bearer": []}]
    assert {"401", "422"} <= set(document["paths"]["/api-keys"]["post"]["responses"])
    assert {"401", "404"} <= set(document["paths"]["/api-keys/{key_id}"]["delete"]["responses"])
