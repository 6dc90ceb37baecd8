"""Commonly used passwords are refused (sign-up and change; reset in test_recovery_reset.py),
and GET /auth/password-policy publishes the configured rules."""

from __future__ import annotations

from fastapi.testclient import TestClient

from api.services.password_policy import COMMON_PASSWORD, common_passwords
from tests.support.accounts import DEFAULT_PASSWORD, register, signup

# On zxcvbn's list as "p@ssw0rd", and it meets every other rule.
COMMON_BUT_COMPLEX = "P@ssw0rd"


def _rule_message(response, field: str) -> str:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", field]
    return error["msg"]


def test_the_list_is_zxcvbns_and_large_enough() -> None:
    listed = common_passwords()
    assert len(listed) >= 30_000
    assert {"password", "123456", "p@ssw0rd", "qwerty"} <= listed
    assert DEFAULT_PASSWORD.casefold() not in listed


def test_signup_refuses_a_common_password_whatever_its_case(client: TestClient) -> None:
    for password in (COMMON_BUT_COMPLEX, "p@SSw0rd", "PA$$w0rd"):
        message = _rule_message(signup(client, "common_01", password), "password")
        assert message == COMMON_PASSWORD, password
    assert signup(client, "common_01").status_code == 201


def test_change_password_refuses_a_common_password(client: TestClient) -> None:
    account = register(client, "common_02")
    response = client.post(
        "/auth/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": COMMON_BUT_COMPLEX},
        headers=account["headers"],
    )
    assert _rule_message(response, "new_password") == COMMON_PASSWORD


def test_the_common_password_rule_can_be_switched_off(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(password_block_common=False) as client:
        assert signup(client, "common_03", COMMON_BUT_COMPLEX).status_code == 201
        policy = client.get("/auth/password-policy").json()
        assert policy["block_common"] is False
        assert "not a commonly used password" not in policy["rules"]


def test_password_policy_publishes_the_defaults_without_authentication(
    client: TestClient,
) -> None:
    response = client.get("/auth/password-policy")
    assert response.status_code == 200
    assert response.json() == {
        "min_length": 8,
        "max_bytes": 72,
        "require_upper": True,
        "require_lower": True,
        "require_digit": True,
        "require_symbol": True,
        "block_common": True,
        "not_username_or_email": True,
        "rules": [
            "8 to 72 bytes long (UTF-8)",
            "at least one uppercase letter",
            "at least one lowercase letter",
            "at least one digit",
            "at least one symbol",
            "not the same as the username or email",
            "not a commonly used password",
        ],
    }


def test_password_policy_follows_the_settings(make_client) -> None:  # type: ignore[no-untyped-def]
    with make_client(
        password_min_length=12, password_require_symbol=False, password_require_upper=False
    ) as client:
        policy = client.get("/auth/password-policy").json()
        assert policy["min_length"] == 12
        assert (policy["require_symbol"], policy["require_upper"]) == (False, False)
        assert policy["rules"][:3] == [
            "12 to 72 bytes long (UTF-8)",
            "at least one lowercase letter",
            "at least one digit",
        ]
        # What is published is what is enforced.
        assert signup(client, "common_04", "lowercase1234").status_code == 201
        short = signup(client, "common_05", "lower12345")
        assert "at least 12" in _rule_message(short, "password")
