"""POST /auth/signup: accounts, uniqueness, the password policy and the 72-byte bcrypt limit."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.models import User
from tests.support.accounts import DEFAULT_PASSWORD, login, signup

USER_OUT_FIELDS = {
    "id",
    "username",
    "email",
    "name",
    "role",
    "is_active",
    "is_verified",
    "mfa_enabled",
    "created_at",
    "last_login_at",
}

# Passwords measured in UTF-8 bytes: "é" is 2 bytes, "😀" 4.
PASSWORD_72_BYTES = "Aa1!" + "é" * 33 + "xy"
PASSWORD_73_BYTES = "Aa1!" + "é" * 34 + "x"
EMOJI_72_BYTES = "Aa1!" + "😀" * 17


def _rule_error(response: Any, field: str) -> str:
    """The message of a FastAPI-shaped 422 about `field` (asserting the shape on the way)."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, list) and detail
    for item in detail:
        assert {"loc", "msg", "type"} <= item.keys()
        assert item["loc"][0] == "body"
    messages = [item["msg"] for item in detail if item["loc"][-1] == field]
    assert messages, f"no error about {field}: {detail}"
    return messages[0]


def _user_count(client: TestClient) -> int:
    with client.app.state.database.session() as db:
        return db.scalar(select(func.count()).select_from(User))


def test_signup_returns_201_with_user_out_and_no_secret(client: TestClient) -> None:
    response = signup(client, "alice_01", name="Alice Liddell", email="Alice@Example.com")
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == USER_OUT_FIELDS
    assert body["username"] == "alice_01"
    assert body["email"] == "Alice@example.com"
    assert body["name"] == "Alice Liddell"
    assert body["role"] == "member"
    assert body["is_active"] is True
    assert body["is_verified"] is False
    assert body["mfa_enabled"] is False
    assert body["last_login_at"] is None
    assert body["created_at"].endswith(("Z", "+00:00"))
    assert "hash" not in response.text and DEFAULT_PASSWORD not in response.text
    with client.app.state.database.session() as db:
        stored = db.get(User, body["id"])
        assert stored.password_hash.startswith("$2")
        assert DEFAULT_PASSWORD not in stored.password_hash


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"username": "ALICE_01", "email": "other@example.com"}, "Username is already taken"),
        ({"username": "bob_0001", "email": "ALICE_01@EXAMPLE.COM"}, "Email is already registered"),
    ],
)
def test_signup_conflicts_name_what_is_taken_case_insensitively(
    client: TestClient, second: dict[str, str], message: str
) -> None:
    assert signup(client, "alice_01").status_code == 201
    response = signup(client, second["username"], email=second["email"])
    assert response.status_code == 409
    assert response.json() == {"detail": message}
    assert _user_count(client) == 1


# One app per test is the slow part of a test: the many cases of one rule share theirs.
POLICY_BREACHES = [
    ("Aa1!aaa", "at least 8 characters"),
    ("aaaa1111!", "at least one uppercase letter"),
    ("AAAA1111!", "at least one lowercase letter"),
    ("Aaaaaaaa!", "at least one digit"),
    ("Aaaa11111", "at least one symbol"),
    (PASSWORD_73_BYTES, "72 bytes"),
    ("Aa1!" + "é" * 35, "72 bytes"),  # 39 characters, 74 bytes: bytes are what count
    ("Aa1!\x00aaaa", "NUL"),
]


def test_signup_refuses_each_policy_rule_with_a_message_naming_it(client: TestClient) -> None:
    for password, rule in POLICY_BREACHES:
        message = _rule_error(signup(client, "carol_01", password), "password")
        assert rule in message, (password, message)
    assert _user_count(client) == 0


def test_signup_refuses_password_equal_to_username_or_email(client: TestClient) -> None:
    same_as_username = signup(client, "aBC_1234", "Abc_1234")
    assert "same as the username or email" in _rule_error(same_as_username, "password")
    same_as_email = signup(client, "dave_01", "Dave.01@Example.com", email="dave.01@example.com")
    assert "same as the username or email" in _rule_error(same_as_email, "password")


def test_signup_refuses_mismatched_confirmation_and_unagreed_terms(client: TestClient) -> None:
    mismatch = signup(client, "erin_01", password_confirm=DEFAULT_PASSWORD + "x")
    assert "do not match" in _rule_error(mismatch, "password_confirm")
    no_terms = signup(client, "erin_01", agree_terms=False)
    assert "terms" in _rule_error(no_terms, "agree_terms")
    assert _user_count(client) == 0


INVALID_FIELDS: list[tuple[dict[str, Any], str]] = [
    ({"username": "abc"}, "username"),
    ({"username": "a" * 21}, "username"),
    ({"username": "bad-name"}, "username"),
    ({"username": "bad name"}, "username"),
    ({"username": "trailing\n"}, "username"),
    ({"email": "not-an-email"}, "email"),
    ({"email": "a\x00b@example.com"}, "email"),
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "n" * 101}, "name"),
    ({"name": "Nul\x00Name"}, "name"),
    ({"agree_terms": None}, "agree_terms"),
]


def test_signup_validates_username_email_and_name(client: TestClient) -> None:
    for fields, field in INVALID_FIELDS:
        values = dict(fields)
        username = values.pop("username", "frank_01")
        _rule_error(signup(client, username, **values), field)
    assert _user_count(client) == 0


def test_signup_with_missing_fields_is_fastapis_422(client: TestClient) -> None:
    response = client.post("/auth/signup", json={"username": "gina_001"})
    assert response.status_code == 422
    missing = {item["loc"][-1] for item in response.json()["detail"]}
    assert {"email", "name", "password", "password_confirm", "agree_terms"} <= missing


def test_rule_violation_422_has_fastapis_shape(client: TestClient) -> None:
    """A policy 422 raised by a service looks like FastAPI's own validation 422."""
    own = signup(client, "abc").json()["detail"][0]
    rule = signup(client, "hank_001", "short").json()["detail"][0]
    assert set(rule) <= set(own)
    assert {"loc", "msg", "type"} <= set(rule)
    assert rule["loc"] == ["body", "password"]


def test_72_byte_password_is_whole_never_truncated(client: TestClient) -> None:
    assert len(PASSWORD_72_BYTES.encode()) == 72
    assert signup(client, "ivan_001", PASSWORD_72_BYTES).status_code == 201
    assert login(client, "ivan_001", PASSWORD_72_BYTES).status_code == 200
    # bcrypt reads 72 bytes; a prefix must not match and a longer password must not either.
    assert login(client, "ivan_001", PASSWORD_72_BYTES[:-1]).status_code == 401
    assert login(client, "ivan_001", PASSWORD_72_BYTES + "z").status_code == 401


def test_4_byte_characters_count_as_4_bytes(client: TestClient) -> None:
    assert len(EMOJI_72_BYTES.encode()) == 72
    assert signup(client, "judy_001", EMOJI_72_BYTES).status_code == 201
    assert login(client, "judy_001", EMOJI_72_BYTES).status_code == 200
    too_long = signup(client, "judy_002", EMOJI_72_BYTES + "!")
    assert "72 bytes" in _rule_error(too_long, "password")


def test_policy_is_configurable(make_client) -> None:
    with make_client(
        password_min_length=4,
        password_require_upper=False,
        password_require_digit=False,
        password_require_symbol=False,
    ) as client:
        assert signup(client, "kate_001", "abcd").status_code == 201
        assert "at least 4" in _rule_error(signup(client, "kate_002", "abc"), "password")
