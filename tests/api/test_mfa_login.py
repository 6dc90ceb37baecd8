"""Logging in with two-factor authentication: /auth/login's challenge, /auth/mfa/verify,
/auth/token's client_secret, replay, drift, recovery codes, lockout, and `amr`."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import select, update

from api.models import LoginEvent, MfaChallenge, TotpCredential, User, utcnow
from api.schemas.auth import TokenPair
from tests.support.accounts import (
    DEFAULT_PASSWORD,
    AccountFactory,
    bearer,
    login,
    refresh_cookie,
)
from tests.support.databases import app_session
from tests.support.mfa import (
    enable_mfa,
    mfa_token,
    totp_code,
    verify_mfa,
    wait_for_fresh_step,
    wrong_totp_code,
)

CODE_REQUIRED = "Two-factor code required: put the current code in the client_secret field."


def _enrolled(client: TestClient, accounts: AccountFactory, username: str) -> dict[str, Any]:
    """A new account, logged in, with 2FA on."""
    account = accounts.logged_in(client, username)
    return {
        "user": {"id": account.user.id, "username": username},
        "headers": account.headers,
        **enable_mfa(client, account.headers),
    }


def _forget_used_steps(client: TestClient) -> None:
    """As if the time steps of the codes used so far had passed: the next code of any step in
    the drift window is accepted again (waiting 30 s per login is no way to test)."""
    with app_session(client) as db:
        db.execute(update(TotpCredential).values(last_used_step=None))
        db.commit()


def _amr(access_token: str) -> list[str]:
    return jwt.get_unverified_claims(access_token)["amr"]


def _reasons(client: TestClient, user_id: int) -> list[str | None]:
    with app_session(client) as db:
        return list(
            db.scalars(
                select(LoginEvent.failure_reason)
                .where(LoginEvent.user_id == user_id)
                .order_by(LoginEvent.id)
            )
        )


def test_login_answers_a_challenge_without_tokens_or_cookie(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l01")
    events_before = _reasons(client, account["user"]["id"])

    response = login(client, "mfa_l01", remember_me=True)
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"mfa_required", "mfa_token", "expires_in"}
    assert body["mfa_required"] is True
    assert body["expires_in"] == 300
    assert len(body["mfa_token"]) >= 43
    assert "set-cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    # The password step is not a login event, and no login happened yet.
    assert _reasons(client, account["user"]["id"]) == events_before
    with app_session(client) as db:
        user = db.get(User, account["user"]["id"])
        assert user is not None
        assert user.last_login_at is not None  # from the login before 2FA
        first_login_at = user.last_login_at
        # Only the token's SHA-256 is stored.
        stored = db.scalars(select(MfaChallenge.token_hash)).all()
        assert body["mfa_token"] not in stored

    # The mfa_token is no access token.
    me = client.get("/auth/me", headers=bearer(body["mfa_token"]))
    assert me.status_code == 401
    assert me.headers["WWW-Authenticate"] == "Bearer"

    verified = verify_mfa(client, body["mfa_token"], totp_code(account["secret"], 1))
    assert verified.status_code == 200, verified.text
    pair = verified.json()
    assert set(pair) == set(TokenPair.model_fields)
    assert verified.headers["Cache-Control"] == "no-store"
    # remember_me of the verify decides (the login's is ignored): a one-day session cookie.
    assert "Max-Age" not in refresh_cookie(verified)
    assert abs(pair["refresh_expires_in"] - 86400) <= 5
    assert _amr(pair["access_token"]) == ["pwd", "otp"]
    me = client.get("/auth/me", headers=bearer(pair["access_token"]))
    assert me.json()["mfa_enabled"] is True
    assert _reasons(client, account["user"]["id"]) == [*events_before, None]
    with app_session(client) as db:
        user = db.get(User, account["user"]["id"])
        assert user is not None
        assert user.last_login_at is not None
        assert user.last_login_at > first_login_at


def test_verify_with_remember_me_gives_a_long_session(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l02")
    token = mfa_token(client, "mfa_l02")
    verified = verify_mfa(client, token, totp_code(account["secret"], 1), remember_me=True)
    assert verified.status_code == 200, verified.text
    assert "Max-Age=2592000" in refresh_cookie(verified)


def test_amr_is_pwd_without_2fa_and_kept_across_refreshes(
    client: TestClient, accounts: AccountFactory
) -> None:
    plain = accounts.logged_in(client, "mfa_l03")
    assert _amr(plain.tokens["access_token"]) == ["pwd"]
    refreshed = client.post("/auth/refresh", json={"refresh_token": plain.tokens["refresh_token"]})
    assert _amr(refreshed.json()["access_token"]) == ["pwd"]

    account = _enrolled(client, accounts, "mfa_l04")
    pair = verify_mfa(client, mfa_token(client, "mfa_l04"), totp_code(account["secret"], 1)).json()
    for _ in range(2):
        pair = client.post("/auth/refresh", json={"refresh_token": pair["refresh_token"]}).json()
        assert _amr(pair["access_token"]) == ["pwd", "otp"]


def test_a_code_is_accepted_once_and_the_enabling_code_counts_as_used(
    client: TestClient,
    accounts: AccountFactory,
) -> None:
    account = accounts.logged_in(client, "mfa_l05")
    setup = client.post("/auth/mfa/totp/setup", headers=account.headers).json()
    code = totp_code(setup["secret"], 1)
    enabled = client.post("/auth/mfa/totp/enable", json={"code": code}, headers=account.headers)
    assert enabled.status_code == 200, enabled.text

    token = mfa_token(client, "mfa_l05")
    replayed = verify_mfa(client, token, code)
    assert replayed.status_code == 401
    assert replayed.json() == {"detail": "Invalid two-factor code"}

    # Any code of a step before the last used one is refused as well.
    refused = verify_mfa(client, token, totp_code(setup["secret"], 0))
    assert refused.status_code == 401

    _forget_used_steps(client)
    code = totp_code(setup["secret"], 1)
    assert verify_mfa(client, token, code).status_code == 200
    # The same code again, on a new login: used.
    assert verify_mfa(client, mfa_token(client, "mfa_l05"), code).status_code == 401


@pytest.mark.parametrize(("steps", "accepted"), [(-1, True), (1, True), (-2, False), (2, False)])
def test_one_step_of_drift_either_way(
    client: TestClient, steps: int, accepted: bool, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, f"mfa_d{steps + 2}")
    _forget_used_steps(client)
    token = mfa_token(client, account["user"]["username"])
    wait_for_fresh_step()
    response = verify_mfa(client, token, totp_code(account["secret"], steps))
    assert response.status_code == (200 if accepted else 401), response.text


def test_recovery_codes_work_once_each_in_any_spelling(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l06")
    codes = account["recovery_codes"]
    assert len(codes) == 10

    first = verify_mfa(client, mfa_token(client, "mfa_l06"), codes[0])
    assert first.status_code == 200, first.text
    pair = first.json()
    assert _amr(pair["access_token"]) == ["pwd", "otp"]
    status = client.get("/auth/mfa", headers=bearer(pair["access_token"])).json()
    assert status["recovery_codes_left"] == 9

    again = verify_mfa(client, mfa_token(client, "mfa_l06"), codes[0])
    assert again.status_code == 401
    assert again.json() == {"detail": "Invalid two-factor code"}

    # Upper case, without hyphens, with spaces: the same code.
    spelled = f"  {codes[1].replace('-', '').upper()} "
    assert verify_mfa(client, mfa_token(client, "mfa_l06"), spelled).status_code == 200
    # Another account's code is no code of this one.
    other = _enrolled(client, accounts, "mfa_l07")
    foreign = verify_mfa(client, mfa_token(client, "mfa_l06"), other["recovery_codes"][0])
    assert foreign.status_code == 401


def test_a_used_unknown_or_expired_mfa_token_is_refused(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l08")
    user_id = account["user"]["id"]
    token = mfa_token(client, "mfa_l08")
    assert verify_mfa(client, token, totp_code(account["secret"], 1)).status_code == 200
    _forget_used_steps(client)

    used = verify_mfa(client, token, totp_code(account["secret"], 1))
    assert used.status_code == 401
    assert used.headers["WWW-Authenticate"] == "Bearer"
    assert "log in again" in used.json()["detail"]

    unknown = verify_mfa(client, "not-a-token-anyone-was-given", totp_code(account["secret"]))
    assert unknown.status_code == 401
    assert unknown.json() == used.json()

    expiring = mfa_token(client, "mfa_l08")
    with app_session(client) as db:
        db.execute(
            update(MfaChallenge)
            .where(MfaChallenge.used_at.is_(None))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    expired = verify_mfa(client, expiring, totp_code(account["secret"], 1))
    assert expired.status_code == 401
    assert expired.json() == used.json()
    # The right code was not used up by the dead tokens.
    assert (
        verify_mfa(
            client, mfa_token(client, "mfa_l08"), totp_code(account["secret"], 1)
        ).status_code
        == 200
    )

    # Success, the used token, the expired one, success; the unknown one names no account.
    assert _reasons(client, user_id)[-4:] == [None, "mfa_failed", "mfa_failed", None]
    with app_session(client) as db:
        anonymous = db.scalars(
            select(LoginEvent.failure_reason).where(LoginEvent.user_id.is_(None))
        ).all()
    assert anonymous == ["mfa_failed"]


def test_after_five_wrong_codes_the_mfa_token_is_refused_even_with_the_right_code(
    make_client,
    accounts: AccountFactory,
) -> None:
    # A lockout budget above the token's, so that it is the token's limit that shows.
    with make_client(max_login_attempts=20) as client:
        account = _enrolled(client, accounts, "mfa_l09")
        token = mfa_token(client, "mfa_l09")
        for _ in range(5):
            wrong = verify_mfa(client, token, wrong_totp_code(account["secret"]))
            assert wrong.status_code == 401
            assert wrong.json() == {"detail": "Invalid two-factor code"}
        right_codes = (totp_code(account["secret"], 1), account["recovery_codes"][0])
        for code in (*right_codes, wrong_totp_code(account["secret"])):
            refused = verify_mfa(client, token, code)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            assert "log in again" in refused.json()["detail"]
        assert _reasons(client, account["user"]["id"])[-8:] == ["mfa_failed"] * 5 + ["locked"] * 3
        # Nothing was used up: a new login goes through with the same codes.
        fresh = mfa_token(client, "mfa_l09")
        assert verify_mfa(client, fresh, account["recovery_codes"][0]).status_code == 200


def test_wrong_codes_count_towards_the_account_lockout(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l10")
    first, second = mfa_token(client, "mfa_l10"), mfa_token(client, "mfa_l10")
    for wrong_code in (wrong_totp_code(account["secret"]), "abcd-efgh-ijkl", "no code"):
        assert verify_mfa(client, first, wrong_code).status_code == 401
    for _ in range(2):
        assert login(client, "mfa_l10", "Wrong!pass1").status_code == 401

    locked = login(client, "mfa_l10")
    assert locked.status_code == 429
    assert "Too many failed logins" in locked.json()["detail"]
    # A challenge issued before the lockout cannot get round it, even with the right code.
    late = verify_mfa(client, second, totp_code(account["secret"], 1))
    assert late.status_code == 429
    assert "Too many failed logins" in late.json()["detail"]
    assert _reasons(client, account["user"]["id"])[-7:] == [
        "mfa_failed",
        "mfa_failed",
        "mfa_failed",
        "bad_credentials",
        "bad_credentials",
        "locked",
        "locked",
    ]


def test_a_success_at_the_second_step_resets_the_count(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l11")
    token = mfa_token(client, "mfa_l11")
    for _ in range(4):
        assert verify_mfa(client, token, wrong_totp_code(account["secret"])).status_code == 401
    assert verify_mfa(client, token, totp_code(account["secret"], 1)).status_code == 200
    for _ in range(4):
        assert login(client, "mfa_l11", "Wrong!pass1").status_code == 401
    assert login(client, "mfa_l11").status_code == 200


def test_login_history_shows_mfa_failed(client: TestClient, accounts: AccountFactory) -> None:
    account = _enrolled(client, accounts, "mfa_l12")
    token = mfa_token(client, "mfa_l12")
    assert verify_mfa(client, token, wrong_totp_code(account["secret"])).status_code == 401
    pair = verify_mfa(client, token, totp_code(account["secret"], 1)).json()
    history = client.get(
        "/auth/login-history", headers=bearer(pair["access_token"]), params={"limit": 2}
    ).json()
    assert [(e["success"], e["failure_reason"]) for e in history["items"]] == [
        (True, None),
        (False, "mfa_failed"),
    ]
    assert all(e["username_attempted"] == "mfa_l12" for e in history["items"])


def test_a_deactivated_account_cannot_finish_its_login(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_l13")
    token = mfa_token(client, "mfa_l13")
    with app_session(client) as db:
        db.execute(update(User).values(is_active=False))
        db.commit()
    refused = verify_mfa(client, token, totp_code(account["secret"], 1))
    assert refused.status_code == 403
    assert _reasons(client, account["user"]["id"])[-1] == "inactive"


def _token_form(username: str, code: str | None = None) -> dict[str, str]:
    form = {"username": username, "password": DEFAULT_PASSWORD}
    if code is not None:
        form["client_secret"] = code
    return form


def test_token_route_takes_the_code_in_client_secret(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_t01")
    user_id = account["user"]["id"]

    wrong_code = wrong_totp_code(account["secret"])
    for form in (_token_form("mfa_t01"), _token_form("mfa_t01", wrong_code)):
        refused = client.post("/auth/token", data=form)
        assert refused.status_code == 401
        assert refused.json() == {"detail": CODE_REQUIRED}
        assert refused.headers["WWW-Authenticate"] == "Bearer"

    granted = client.post(
        "/auth/token", data=_token_form("mfa_t01", totp_code(account["secret"], 1))
    )
    assert granted.status_code == 200, granted.text
    assert _amr(granted.json()["access_token"]) == ["pwd", "otp"]
    by_recovery = client.post(
        "/auth/token", data=_token_form("mfa_t01", account["recovery_codes"][3])
    )
    assert by_recovery.status_code == 200
    # A wrong password stays the plain 401, whatever the code.
    wrong = client.post(
        "/auth/token",
        data={"username": "mfa_t01", "password": "Wrong!pass1", "client_secret": "123456"},
    )
    assert wrong.json() == {"detail": "Invalid username or password"}
    assert _reasons(client, user_id)[-5:] == [
        "mfa_failed",
        "mfa_failed",
        None,
        None,
        "bad_credentials",
    ]


def test_token_route_ignores_client_secret_without_2fa(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("mfa_t02")
    granted = client.post("/auth/token", data=_token_form("mfa_t02", "whatever"))
    assert granted.status_code == 200
    assert _amr(granted.json()["access_token"]) == ["pwd"]


def test_wrong_codes_on_the_token_route_lock_the_account(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = _enrolled(client, accounts, "mfa_t03")
    for _ in range(5):
        wrong = _token_form("mfa_t03", wrong_totp_code(account["secret"]))
        assert client.post("/auth/token", data=wrong).status_code == 401
    locked = client.post(
        "/auth/token", data=_token_form("mfa_t03", totp_code(account["secret"], 1))
    )
    assert locked.status_code == 429
    assert login(client, "mfa_t03").status_code == 429


def test_verify_has_its_own_per_address_rate_limit(make_client, accounts: AccountFactory) -> None:
    with make_client(rate_limit_enabled=True, login_rate_limit="3/minute") as client:
        account = _enrolled(client, accounts, "mfa_r01")
        token = mfa_token(client, "mfa_r01")
        for _ in range(3):
            wrong = verify_mfa(client, token, wrong_totp_code(account["secret"]))
            assert wrong.status_code == 401
        limited = verify_mfa(client, token, totp_code(account["secret"], 1))
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) >= 1
        assert "from this address" in limited.json()["detail"]
        assert _reasons(client, account["user"]["id"])[-1] == "rate_limited"


def test_no_secret_code_or_token_is_logged(
    client: TestClient, caplog, accounts: AccountFactory
) -> None:  # type: ignore[no-untyped-def]
    caplog.set_level(logging.DEBUG)
    enrolled = enable_mfa(client, accounts.logged_in(client, "mfa_s01").headers)
    token = mfa_token(client, "mfa_s01")
    code = totp_code(enrolled["secret"], 1)
    assert verify_mfa(client, token, wrong_totp_code(enrolled["secret"])).status_code == 401
    assert verify_mfa(client, token, code).status_code == 200
    logged = caplog.text
    assert "/auth/mfa/verify" in logged  # the access log is there
    for secret in (enrolled["secret"], token, code, *enrolled["recovery_codes"]):
        assert secret not in logged
