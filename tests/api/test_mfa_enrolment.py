"""Enrolling in two-factor authentication and managing it: /auth/mfa, setup, enable, disable,
recovery codes, and the secret's encryption at rest."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import select

from api.core.config import Settings
from api.models import AuditEntry, LoginEvent, OutboxEvent, RecoveryCode, TotpCredential
from tests.support.accounts import DEFAULT_PASSWORD, AccountFactory, bearer, login
from tests.support.databases import app_session
from tests.support.mfa import enable_mfa, mfa_token, totp_code, verify_mfa, wrong_totp_code

OFF = {"enabled": False, "enabled_at": None, "recovery_codes_left": 0, "pending": False}


def _setup(client: TestClient, headers: dict[str, str]) -> dict[str, str]:
    response = client.post("/auth/mfa/totp/setup", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


def _enable(client: TestClient, headers: dict[str, str], code: str):  # type: ignore[no-untyped-def]
    return client.post("/auth/mfa/totp/enable", json={"code": code}, headers=headers)


def _audit_actions(client: TestClient) -> list[str]:
    with app_session(client) as db:
        return list(db.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def test_setup_answers_a_pending_secret_with_its_uri_and_qr_code(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "mfa_e01")
    headers = account.headers
    assert client.get("/auth/mfa", headers=headers).json() == OFF

    setup = client.post("/auth/mfa/totp/setup", headers=headers)
    assert setup.headers["Cache-Control"] == "no-store"
    body = setup.json()
    assert set(body) == {"secret", "otpauth_uri", "qr_svg"}
    secret = body["secret"]
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)  # base32
    assert len(base64.b32decode(secret)) * 8 >= 160
    assert body["otpauth_uri"] == (
        f"otpauth://totp/Pixelgate:mfa_e01?secret={secret}&issuer=Pixelgate"
    )
    assert parse_qs(urlsplit(body["otpauth_uri"]).query) == {
        "secret": [secret],
        "issuer": ["Pixelgate"],
    }
    assert body["qr_svg"].startswith('<svg xmlns="http://www.w3.org/2000/svg"')
    assert body["qr_svg"].endswith("</svg>")

    status = client.get("/auth/mfa", headers=headers).json()
    assert status == {**OFF, "pending": True}
    # Nothing changed for logins while only pending.
    assert "access_token" in login(client, "mfa_e01").json()
    assert client.get("/auth/me", headers=headers).json()["mfa_enabled"] is False


def test_setup_again_replaces_the_pending_secret(
    client: TestClient, accounts: AccountFactory
) -> None:
    headers = accounts.logged_in(client, "mfa_e02").headers
    first = _setup(client, headers)["secret"]
    second = _setup(client, headers)["secret"]
    assert first != second
    old = _enable(client, headers, totp_code(first))
    assert old.status_code == 400
    assert old.json() == {"detail": "Invalid two-factor code"}
    assert _enable(client, headers, totp_code(second)).status_code == 200


def test_enable_needs_a_pending_secret_and_the_right_code(
    client: TestClient, accounts: AccountFactory
) -> None:
    headers = accounts.logged_in(client, "mfa_e03").headers
    nothing = _enable(client, headers, "123456")
    assert nothing.status_code == 409
    assert "setup" in nothing.json()["detail"]

    secret = _setup(client, headers)["secret"]
    for wrong in (wrong_totp_code(secret), "not a code"):
        refused = _enable(client, headers, wrong)
        assert refused.status_code == 400
    assert _enable(client, headers, "").status_code == 422
    # Wrong codes here answer 400 and are no login attempts.
    with app_session(client) as db:
        assert db.scalars(select(LoginEvent.failure_reason)).all() == [None]
    assert client.get("/auth/mfa", headers=headers).json()["enabled"] is False


def test_enable_answers_ten_recovery_codes_and_logs_out_the_other_sessions(
    client: TestClient,
    accounts: AccountFactory,
) -> None:
    account = accounts.logged_in(client, "mfa_e04")
    headers = account.headers
    other = login(client, "mfa_e04").json()
    secret = _setup(client, headers)["secret"]

    enabled = _enable(client, headers, totp_code(secret))
    assert enabled.status_code == 200, enabled.text
    assert enabled.headers["Cache-Control"] == "no-store"
    codes = enabled.json()["recovery_codes"]
    assert len(codes) == 10 == len(set(codes))
    for code in codes:
        symbols = code.replace("-", "")
        assert re.fullmatch(r"[a-z2-7]+", symbols)
        assert len(symbols) * 5 >= 50  # base32: 5 bits a symbol

    # Every other session is out; this one stays.
    assert client.get("/auth/me", headers=bearer(other["access_token"])).status_code == 401
    assert (
        client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code
        == 401
    )
    me = client.get("/auth/me", headers=headers)
    assert me.status_code == 200
    assert me.json()["mfa_enabled"] is True
    status = client.get("/auth/mfa", headers=headers).json()
    assert status["enabled"] is True
    assert status["enabled_at"] is not None
    assert status["recovery_codes_left"] == 10
    assert status["pending"] is False
    assert _audit_actions(client) == ["mfa_enabled"]
    # This session proved the code: its next tokens say so.
    refreshed = client.post(
        "/auth/refresh", json={"refresh_token": account.tokens["refresh_token"]}
    )
    assert jwt.get_unverified_claims(refreshed.json()["access_token"])["amr"] == ["pwd", "otp"]

    # Once on, setup and enable are conflicts; nothing changes.
    assert client.post("/auth/mfa/totp/setup", headers=headers).status_code == 409
    again = _enable(client, headers, totp_code(secret, 1))
    assert again.status_code == 409
    assert again.json() == {"detail": "Two-factor authentication is already enabled"}
    verified = verify_mfa(client, mfa_token(client, "mfa_e04"), totp_code(secret, 1))
    assert verified.status_code == 200


def test_secrets_and_codes_are_stored_encrypted_and_hashed(
    make_client, accounts: AccountFactory
) -> None:
    key = Fernet.generate_key()
    with make_client(mfa_encryption_key=key.decode()) as client:
        account = accounts.logged_in(client, "mfa_e05")
        setup = _setup(client, account.headers)
        codes = _enable(client, account.headers, totp_code(setup["secret"])).json()
        with app_session(client) as db:
            ciphertext = db.scalars(select(TotpCredential.secret_ciphertext)).one()
            hashes = db.scalars(select(RecoveryCode.code_hash)).all()
        assert setup["secret"] not in ciphertext
        assert Fernet(key).decrypt(ciphertext.encode()).decode() == setup["secret"]
        assert len(hashes) == 10
        assert not set(codes["recovery_codes"]) & set(hashes)
        # Never returned after setup.
        assert setup["secret"] not in client.get("/auth/mfa", headers=account.headers).text


def test_without_a_key_the_secret_is_encrypted_with_one_derived_from_the_jwt_secret(
    make_client,
    accounts: AccountFactory,
) -> None:
    with make_client() as client:
        account = accounts.logged_in(client, "mfa_e06")
        enrolled = enable_mfa(client, account.headers)
        with app_session(client) as db:
            ciphertext = db.scalars(select(TotpCredential.secret_ciphertext)).one()
        assert enrolled["secret"] not in ciphertext
    # The same JWT_SECRET_KEY after a restart reads it ...
    with make_client() as client:
        token = mfa_token(client, "mfa_e06")
        assert verify_mfa(client, token, totp_code(enrolled["secret"], 1)).status_code == 200
    # ... another one cannot.
    with make_client(jwt_secret_key="another-secret-" + "y" * 40) as client:
        token = mfa_token(client, "mfa_e06")
        assert verify_mfa(client, token, totp_code(enrolled["secret"], 1)).status_code == 401


def test_an_invalid_encryption_key_is_refused_without_echoing_it() -> None:
    from api.core.config import ConfigurationError, load_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MFA_ENCRYPTION_KEY", "not-a-fernet-key-but-a-secret")
        with pytest.raises(ConfigurationError) as error:
            load_settings()
    assert "MFA_ENCRYPTION_KEY" in str(error.value)
    assert "not-a-fernet-key-but-a-secret" not in str(error.value)
    assert Settings(_env_file=None).mfa_encryption_key is None  # type: ignore[call-arg]


def test_disable_takes_the_password_and_a_code(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "mfa_e08")
    headers = account.headers
    body = {"password": DEFAULT_PASSWORD, "code": "123456"}
    assert client.post("/auth/mfa/disable", json=body, headers=headers).status_code == 409

    enrolled = enable_mfa(client, headers)
    secret = enrolled["secret"]
    wrong_password = {"password": "Wrong!pass1", "code": totp_code(secret, 1)}
    refused = client.post("/auth/mfa/disable", json=wrong_password, headers=headers)
    assert refused.status_code == 400
    assert refused.json() == {"detail": "Password is incorrect"}
    wrong_code = {"password": DEFAULT_PASSWORD, "code": wrong_totp_code(secret)}
    refused = client.post("/auth/mfa/disable", json=wrong_code, headers=headers)
    assert refused.status_code == 400
    assert refused.json() == {"detail": "Invalid two-factor code"}
    # The enabling code is used: it cannot disable either.
    replay = {"password": DEFAULT_PASSWORD, "code": totp_code(secret)}
    assert client.post("/auth/mfa/disable", json=replay, headers=headers).status_code == 400

    right = {"password": DEFAULT_PASSWORD, "code": totp_code(secret, 1)}
    assert client.post("/auth/mfa/disable", json=right, headers=headers).status_code == 204
    assert client.get("/auth/mfa", headers=headers).json() == OFF
    assert client.get("/auth/me", headers=headers).json()["mfa_enabled"] is False
    assert "access_token" in login(client, "mfa_e08").json()
    with app_session(client) as db:
        assert db.scalars(select(TotpCredential)).all() == []
        assert db.scalars(select(RecoveryCode)).all() == []
        # Wrong codes here are no login attempts and do not count towards the lockout.
        assert "mfa_failed" not in db.scalars(select(LoginEvent.failure_reason)).all()
    assert _audit_actions(client) == ["mfa_enabled", "mfa_disabled"]


def test_disable_with_a_recovery_code(client: TestClient, accounts: AccountFactory) -> None:
    headers = accounts.logged_in(client, "mfa_e09").headers
    codes = enable_mfa(client, headers)["recovery_codes"]
    body = {"password": DEFAULT_PASSWORD, "code": codes[9].upper()}
    assert client.post("/auth/mfa/disable", json=body, headers=headers).status_code == 204


def test_regenerating_recovery_codes_voids_the_old_ones(
    client: TestClient, accounts: AccountFactory
) -> None:
    headers = accounts.logged_in(client, "mfa_e10").headers
    assert (
        client.post("/auth/mfa/recovery-codes", json={"code": "123456"}, headers=headers)
    ).status_code == 409
    enrolled = enable_mfa(client, headers)
    old = enrolled["recovery_codes"]
    wrong = {"code": wrong_totp_code(enrolled["secret"])}
    assert client.post("/auth/mfa/recovery-codes", json=wrong, headers=headers).status_code == 400

    # One old code is used first: the new set is ten unused codes again.
    assert verify_mfa(client, mfa_token(client, "mfa_e10"), old[0]).status_code == 200
    assert client.get("/auth/mfa", headers=headers).json()["recovery_codes_left"] == 9
    response = client.post(
        "/auth/mfa/recovery-codes", json={"code": totp_code(enrolled["secret"], 1)}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["Cache-Control"] == "no-store"
    new = response.json()["recovery_codes"]
    assert len(new) == 10
    assert not set(new) & set(old)
    assert client.get("/auth/mfa", headers=headers).json()["recovery_codes_left"] == 10

    assert verify_mfa(client, mfa_token(client, "mfa_e10"), old[1]).status_code == 401
    assert verify_mfa(client, mfa_token(client, "mfa_e10"), new[0]).status_code == 200
    # A recovery code may confirm the regeneration too.
    again = client.post("/auth/mfa/recovery-codes", json={"code": new[1]}, headers=headers)
    assert again.status_code == 200
    assert _audit_actions(client) == [
        "mfa_enabled",
        "mfa_recovery_codes_regenerated",
        "mfa_recovery_codes_regenerated",
    ]


def test_mfa_routes_need_a_login(client: TestClient) -> None:
    for method, path, body in (
        ("get", "/auth/mfa", None),
        ("post", "/auth/mfa/totp/setup", None),
        ("post", "/auth/mfa/totp/enable", {"code": "123456"}),
        ("post", "/auth/mfa/disable", {"password": DEFAULT_PASSWORD, "code": "123456"}),
        ("post", "/auth/mfa/recovery-codes", {"code": "123456"}),
    ):
        response = client.request(method, path, json=body)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"] == "Bearer"


def _events(client: TestClient) -> list[tuple[str, dict[str, object]]]:
    with app_session(client) as db:
        return [(e.type, e.data) for e in db.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]


def test_each_change_records_its_event_and_a_refused_one_none(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "mfa_e11")
    user_id, headers = account.user.id, account.headers
    secret = _setup(client, headers)["secret"]
    before = _events(client)
    assert _enable(client, headers, wrong_totp_code(secret)).status_code == 400
    assert _events(client) == before

    assert _enable(client, headers, totp_code(secret)).status_code == 200
    codes = client.post(
        "/auth/mfa/recovery-codes", json={"code": totp_code(secret, 1)}, headers=headers
    ).json()["recovery_codes"]
    refused = {"password": DEFAULT_PASSWORD, "code": wrong_totp_code(secret)}
    assert client.post("/auth/mfa/disable", json=refused, headers=headers).status_code == 400
    right = {"password": DEFAULT_PASSWORD, "code": codes[0]}
    assert client.post("/auth/mfa/disable", json=right, headers=headers).status_code == 204
    assert _events(client)[len(before) :] == [
        ("user.mfa_enabled", {"user_id": user_id}),
        ("user.mfa_recovery_codes_regenerated", {"user_id": user_id}),
        ("user.mfa_disabled", {"user_id": user_id, "reason": "disabled_by_user"}),
    ]


def test_codes_tried_at_enable_disable_and_recovery_codes_are_limited_per_account(
    make_client, accounts: AccountFactory
) -> None:
    """Wrong codes there lock nothing, so a stolen session could otherwise guess its way to
    new recovery codes."""
    with make_client(rate_limit_enabled=True, login_rate_limit="3/minute") as client:
        account = accounts.logged_in(client, "mfa_e12")
        enrolled = enable_mfa(client, account.headers)  # one attempt
        wrong = {"code": wrong_totp_code(enrolled["secret"])}
        for _ in range(2):
            refused = client.post("/auth/mfa/recovery-codes", json=wrong, headers=account.headers)
            assert refused.status_code == 400
        right = {"code": totp_code(enrolled["secret"], 1)}
        limited = client.post("/auth/mfa/recovery-codes", json=right, headers=account.headers)
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        body = {"password": DEFAULT_PASSWORD, "code": enrolled["recovery_codes"][0]}
        assert (
            client.post("/auth/mfa/disable", json=body, headers=account.headers).status_code == 429
        )
        # Another account has its own budget.
        other = accounts.logged_in(client, "mfa_e13")
        assert client.post("/auth/mfa/totp/setup", headers=other.headers).status_code == 200
