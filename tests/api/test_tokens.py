"""Access tokens: what is issued, and every way a forged or stale one is refused with a 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import delete, update

from api.core import security
from api.models import AuthSession, User, utcnow
from tests.support.accounts import TEST_JWT_SECRET, AccountFactory, LoggedIn, bearer
from tests.support.databases import app_session

ISSUER, AUDIENCE = "pixelgate", "pixelgate-clients"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _raw_token(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    """A JWT built by hand, for headers python-jose refuses to produce."""
    head = _b64(json.dumps(header).encode()) + "." + _b64(json.dumps(claims).encode())
    return head + "." + _b64(signature)


def _sign(claims: dict[str, Any], algorithm: str = "HS256", secret: str = TEST_JWT_SECRET) -> str:
    return jwt.encode(claims, secret, algorithm=algorithm)


def _me(client: TestClient, token: str) -> Any:
    return client.get("/auth/me", headers=bearer(token))


def _assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json() in (
        {"detail": "Invalid or expired access token"},
        {"detail": "Not authenticated"},
    )


@pytest.fixture
def account(client: TestClient, accounts: AccountFactory) -> LoggedIn:
    return accounts.logged_in(client, "token_01")


@pytest.fixture
def claims(account: LoggedIn) -> dict[str, Any]:
    """The claims of the account's access token."""
    return jwt.get_unverified_claims(account.tokens["access_token"])


def test_issued_access_token_has_the_contract_claims(account: LoggedIn) -> None:
    token = account.tokens["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, TEST_JWT_SECRET, algorithms=["HS256"], audience=AUDIENCE)
    assert claims["sub"] == str(account.user.id)
    assert claims["username"] == "token_01"
    assert claims["role"] == "member"
    assert claims["type"] == "access"
    assert (claims["iss"], claims["aud"]) == (ISSUER, AUDIENCE)
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert abs(claims["iat"] - time.time()) < 60
    assert len(claims["jti"]) >= 16


def test_a_re_signed_copy_of_a_real_token_is_accepted(
    client: TestClient, claims: dict[str, Any]
) -> None:
    """The baseline: the hand-made tokens below differ from a good one in one point only."""
    assert _me(client, _sign(claims)).status_code == 200


def _now() -> int:
    return int(time.time())


CLAIM_CHANGES: dict[str, dict[str, Any]] = {
    "expired": {"exp": _now() - 1, "iat": _now() - 901},
    "wrong type": {"type": "refresh"},
    "no type": {"type": None},
    "wrong audience": {"aud": "someone-else"},
    "no audience": {"aud": None},
    "wrong issuer": {"iss": "evil"},
    "no issuer": {"iss": None},
    "no subject": {"sub": None},
    "non-numeric subject": {"sub": "admin"},
    "numeric subject": {"sub": 1},
    "unknown user": {"sub": "999999"},
    "no expiry": {"exp": None},
    "no issued-at": {"iat": None},
    "no token id": {"jti": None},
    "unknown session": {"sid": 999999},
}


def test_tokens_with_bad_claims_are_refused(client: TestClient, claims: dict[str, Any]) -> None:
    accepted = []
    for change, values in CLAIM_CHANGES.items():
        changed = dict(claims)
        for name, value in values.items():
            if value is None:
                changed.pop(name)
            else:
                changed[name] = value
        response = _me(client, _sign(changed))
        if response.status_code != 401:
            accepted.append(change)
        else:
            _assert_refused(response)
    assert accepted == [], f"accepted: {accepted}"


def test_tampered_tokens_are_refused(
    client: TestClient, account: LoggedIn, claims: dict[str, Any]
) -> None:
    token = account.tokens["access_token"]
    head, payload, signature = token.split(".")
    flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
    _assert_refused(_me(client, f"{head}.{payload}.{flipped}"))
    elevated = dict(claims, role="admin", sub="1")
    _assert_refused(_me(client, f"{head}.{_b64(json.dumps(elevated).encode())}.{signature}"))
    _assert_refused(_me(client, f"{head}.{payload}"))
    _assert_refused(_me(client, "not.a.jwt"))
    _assert_refused(_me(client, "garbage"))


def test_alg_none_and_other_algorithms_are_refused(
    client: TestClient, claims: dict[str, Any]
) -> None:
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "NONE"}):
        _assert_refused(_me(client, _raw_token(header, claims)))
    for algorithm in ("HS384", "HS512"):
        _assert_refused(_me(client, _sign(claims, algorithm)))
    # Key confusion: an "RS256" token whose signature is an HMAC with the shared secret.
    head = _b64(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    body = _b64(json.dumps(claims).encode())
    mac = hmac.new(TEST_JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
    _assert_refused(_me(client, f"{head}.{body}.{_b64(mac)}"))


def test_a_token_signed_with_another_secret_is_refused(
    client: TestClient, claims: dict[str, Any]
) -> None:
    _assert_refused(_me(client, _sign(claims, secret="another-secret-" + "y" * 40)))


def test_a_refresh_token_is_not_an_access_token(client: TestClient, account: LoggedIn) -> None:
    _assert_refused(_me(client, account.tokens["refresh_token"]))


def test_another_users_session_id_is_refused(
    client: TestClient, claims: dict[str, Any], accounts: AccountFactory
) -> None:
    other = accounts.logged_in(client, "token_02")
    other_sid = jwt.get_unverified_claims(other.tokens["access_token"])["sid"]
    _assert_refused(_me(client, _sign(dict(claims, sid=other_sid))))


def test_token_of_a_revoked_session_is_refused(client: TestClient, account: LoggedIn) -> None:
    refresh = {"refresh_token": account.tokens["refresh_token"]}
    assert client.post("/auth/logout", json=refresh).status_code == 204
    _assert_refused(_me(client, account.tokens["access_token"]))


def test_token_of_an_expired_session_is_refused(client: TestClient, account: LoggedIn) -> None:
    token = account.tokens["access_token"]
    with app_session(client) as db:
        db.execute(update(AuthSession).values(expires_at=utcnow() + timedelta(seconds=30)))
        db.commit()
    assert _me(client, token).status_code == 200  # about to expire is not expired
    with app_session(client) as db:
        db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    _assert_refused(_me(client, token))


def test_token_of_a_deactivated_or_soft_deleted_user_is_refused(
    client: TestClient, account: LoggedIn
) -> None:
    token = account.tokens["access_token"]
    user_id = account.user.id
    with app_session(client) as db:
        db.execute(update(User).where(User.id == user_id).values(is_active=False))
        db.commit()
    _assert_refused(_me(client, token))
    with app_session(client) as db:
        db.execute(update(User).where(User.id == user_id).values(deleted_at=utcnow()))
        db.commit()
    _assert_refused(_me(client, token))


def test_token_of_a_deleted_user_is_refused(client: TestClient, account: LoggedIn) -> None:
    token = account.tokens["access_token"]
    with app_session(client) as db:
        db.execute(delete(User).where(User.id == account.user.id))
        db.commit()
    _assert_refused(_me(client, token))


def test_a_token_accepted_before_is_refused_once_it_expires(
    client: TestClient, account: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified tokens are remembered (api.core.security): the expiry is checked on every use."""
    token = account.tokens["access_token"]
    assert _me(client, token).status_code == 200  # verified, and now remembered
    expires_at = jwt.get_unverified_claims(token)["exp"]

    class AfterExpiry:
        @staticmethod
        def time() -> float:
            return expires_at + 1.0

    monkeypatch.setattr(security, "time", AfterExpiry)
    _assert_refused(_me(client, token))
    monkeypatch.undo()
    assert _me(client, token).status_code == 200
