"""Two-factor authentication in tests: codes as an authenticator app computes them (pyotp),
enrolment and the login's second step through the API."""

from __future__ import annotations

import time
from typing import Any

import pyotp

from tests.support.accounts import DEFAULT_PASSWORD, login

TOTP_STEP_S = 30


def totp_code(secret: str, steps: int = 0) -> str:
    """The code an authenticator app shows `steps` time steps from now."""
    return pyotp.TOTP(secret).at(time.time() + steps * TOTP_STEP_S)


def wrong_totp_code(secret: str) -> str:
    """Six digits that are no code of any step near now (a fixed guess is right one time in
    a million)."""
    near = {totp_code(secret, steps) for steps in range(-3, 4)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)


def wait_for_fresh_step(margin_s: float = 3.0) -> None:
    """Waits for the next time step when this one ends within `margin_s`, so that a code
    computed now still belongs to the server's current step when the request arrives."""
    left = TOTP_STEP_S - time.time() % TOTP_STEP_S
    if left < margin_s:
        time.sleep(left + 0.05)


def enable_mfa(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    """Sets up and enables TOTP with the current code, which then counts as used: the next
    login takes `totp_code(secret, 1)`. Returns {"secret", "recovery_codes"}."""
    setup = client.post("/auth/mfa/totp/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    enabled = client.post(
        "/auth/mfa/totp/enable", json={"code": totp_code(secret)}, headers=headers
    )
    assert enabled.status_code == 200, enabled.text
    return {"secret": secret, "recovery_codes": enabled.json()["recovery_codes"]}


def mfa_token(client: Any, username: str, password: str = DEFAULT_PASSWORD) -> str:
    """The first step of a login of an account with 2FA."""
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    assert response.json()["mfa_required"] is True, response.text
    return response.json()["mfa_token"]


def verify_mfa(client: Any, token: str, code: str, **fields: Any) -> Any:
    return client.post("/auth/mfa/verify", json={"mfa_token": token, "code": code, **fields})
