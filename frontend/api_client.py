"""The one module of the dashboard that speaks HTTP to the API.

Every call goes through `ApiClient.request`, which
- adds the access token, and on a 401 refreshes once (under the session's lock) and retries once
  — request bodies, uploads included, are rebuilt from bytes, so a retry resends them whole;
- turns a refused refresh into `SessionExpired` after clearing the login;
- turns network failures and 5xx answers into `ApiUnavailable` with a friendly message;
- turns other error answers into `ApiError` carrying the server's `detail` as written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookiejar import DefaultCookiePolicy
from typing import Any

import requests

from frontend.auth.state import REMEMBERED, SESSION_EXPIRED, AuthState, Tokens
from frontend.config import REQUEST_TIMEOUT, TRANSFER_TIMEOUT, api_base_url

UNREACHABLE = "Cannot reach the Pixelgate server right now. Please try again in a moment."
TIMED_OUT = "The Pixelgate server took too long to answer. Please try again."
SERVER_FAILED = "Something went wrong on the Pixelgate server. Please try again in a moment."


@dataclass
class ApiError(Exception):
    """An answer the user should read: `message` is the server's `detail` as written."""

    status: int
    message: str
    field_errors: dict[str, str] = field(default_factory=dict)
    retry_after: int | None = None

    def __str__(self) -> str:
        return self.message


class ApiUnavailable(ApiError):
    """The API could not be reached, timed out, or failed (5xx)."""


class SessionExpired(ApiError):
    """The refresh token was refused: the user has to log in again."""

    def __init__(self) -> None:
        super().__init__(401, SESSION_EXPIRED)


def _retry_after(response: requests.Response) -> int | None:
    value = response.headers.get("Retry-After", "")
    return int(value) if value.isdigit() else None


def _field_name(location: list[Any]) -> str:
    """`["body", "password"]` → "password"; errors about the whole body → ""."""
    names = [str(part) for part in location[1:] if not isinstance(part, int)]
    return names[-1] if names else ""


def error_from_response(response: requests.Response) -> ApiError:
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    status = response.status_code
    retry_after = _retry_after(response)
    if status >= 500:
        # A 503 with a detail is a rule the user can act on (e.g. "queue full"); others are not.
        message = detail if status == 503 and isinstance(detail, str) else SERVER_FAILED
        return ApiUnavailable(status, message, retry_after=retry_after)
    if isinstance(detail, list):
        field_errors: dict[str, str] = {}
        for item in detail:
            if isinstance(item, dict):
                name = _field_name(list(item.get("loc") or []))
                field_errors.setdefault(name, str(item.get("msg", "Invalid value")))
        message = "; ".join(field_errors.values()) or "The request was not valid."
        return ApiError(status, message, field_errors, retry_after)
    message = detail if isinstance(detail, str) else f"The server answered {status}."
    return ApiError(status, message, retry_after=retry_after)


@dataclass(frozen=True, slots=True)
class MfaChallenge:
    """A login waiting for its second step; `expires_at` on the `time.monotonic()` clock."""

    mfa_token: str
    expires_at: float
    remember_me: bool

    @property
    def expired(self) -> bool:
        return time.monotonic() >= self.expires_at


@dataclass(frozen=True, slots=True)
class Download:
    content: bytes
    media_type: str


class ApiClient:
    """HTTP calls of one browser session; `auth` holds (and receives rotated) tokens."""

    def __init__(
        self,
        auth: AuthState,
        *,
        base_url: str | None = None,
        forwarded_headers: Mapping[str, str] | None = None,
    ) -> None:
        self.auth = auth
        self.base_url = (base_url or api_base_url()).rstrip("/")
        self._http = requests.Session()
        # Tokens live in AuthState only: ignore the API's refresh cookie.
        self._http.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        self._http.headers.update(forwarded_headers or {})

    # -- transport -------------------------------------------------------------------------

    def _send(
        self, method: str, path: str, access_token: str | None, **kwargs: Any
    ) -> requests.Response:
        headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
        kwargs.setdefault("timeout", REQUEST_TIMEOUT)
        try:
            return self._http.request(method, self.base_url + path, headers=headers, **kwargs)
        except requests.Timeout:
            raise ApiUnavailable(0, TIMED_OUT) from None
        except requests.RequestException:
            raise ApiUnavailable(0, UNREACHABLE) from None

    def request(
        self, method: str, path: str, *, authenticated: bool = True, **kwargs: Any
    ) -> requests.Response:
        """Sends a request; returns the (2xx) response or raises an ApiError."""
        if not authenticated:
            response = self._send(method, path, None, **kwargs)
        else:
            access_token = self._access_token()
            response = self._send(method, path, access_token, **kwargs)
            if response.status_code == 401:
                self._refresh(used_access_token=access_token)
                response = self._send(method, path, self._access_token(), **kwargs)
                if response.status_code == 401:
                    self.auth.expire()
                    raise SessionExpired()
        if response.status_code >= 400:
            raise error_from_response(response)
        return response

    def _access_token(self) -> str:
        tokens = self.auth.tokens
        if tokens is None:
            raise SessionExpired()
        return tokens.access_token

    def _refresh(self, *, used_access_token: str) -> None:
        """Rotates the pair once; a run that waited on the lock reuses the new pair."""
        with self.auth.lock:
            tokens = self.auth.tokens
            if tokens is None:
                raise SessionExpired()
            if tokens.access_token != used_access_token:
                return
            response = self._send(
                "POST", "/auth/refresh", None, json={"refresh_token": tokens.refresh_token}
            )
            if response.status_code == 200:
                self.auth.store(Tokens.from_pair(response.json()))
                return
            if response.status_code in (400, 401, 403, 422):
                self.auth.expire()
                raise SessionExpired()
            raise error_from_response(response)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    # -- authentication --------------------------------------------------------------------

    def signup(self, **fields: Any) -> dict[str, Any]:
        return self._json("POST", "/auth/signup", authenticated=False, json=fields)

    def login(
        self, username: str, password: str, *, remember_me: bool
    ) -> dict[str, Any] | MfaChallenge:
        """Logs in, keeps the pair in `auth`, and returns the user; for an account with
        two-factor authentication, returns the challenge that `verify_mfa` completes."""
        answer = self._json(
            "POST",
            "/auth/login",
            authenticated=False,
            json={"username": username, "password": password, "remember_me": remember_me},
        )
        if answer.get("mfa_required"):
            return MfaChallenge(
                mfa_token=answer["mfa_token"],
                expires_at=time.monotonic() + int(answer["expires_in"]),
                remember_me=remember_me,
            )
        return self._logged_in(answer, remember_me)

    def verify_mfa(self, challenge: MfaChallenge, code: str) -> dict[str, Any]:
        """The login's second step: a code of the authenticator app, or a recovery code."""
        pair = self._json(
            "POST",
            "/auth/mfa/verify",
            authenticated=False,
            json={
                "mfa_token": challenge.mfa_token,
                "code": code,
                "remember_me": challenge.remember_me,
            },
        )
        return self._logged_in(pair, challenge.remember_me)

    def _logged_in(self, pair: dict[str, Any], remember_me: bool) -> dict[str, Any]:
        self.auth.store(Tokens.from_pair(pair), remember=remember_me)
        return self.load_user()

    def resume(self, refresh_token: str) -> dict[str, Any]:
        """Continues a remembered session from the refresh cookie (a new browser session):
        joins the tab that already holds it, else rotates it at the API."""
        box = REMEMBERED.find(refresh_token)
        if box is not None:
            self.auth.join(box)
            return self.load_user()
        response = self._send("POST", "/auth/refresh", None, json={"refresh_token": refresh_token})
        if response.status_code in (400, 401, 403, 422):
            self.auth.expire()
            raise SessionExpired()
        if response.status_code >= 400:
            raise error_from_response(response)
        self.auth.store(Tokens.from_pair(response.json()), remember=True)
        return self.load_user()

    def load_user(self) -> dict[str, Any]:
        self.auth.user = self._json("GET", "/auth/me")
        return self.auth.user

    def logout(self) -> bool:
        """Revokes this session at the API and forgets the tokens either way.

        Returns False when the API could not be told (the tokens are forgotten all the same).
        """
        tokens = self.auth.tokens
        self.auth.clear()
        if tokens is None:
            return True
        try:
            self.request(
                "POST",
                "/auth/logout",
                authenticated=False,
                json={"refresh_token": tokens.refresh_token},
            )
        except ApiError:
            return False
        return True

    def logout_everywhere(self) -> None:
        self.request("POST", "/auth/logout-all")
        self.auth.clear("You have been logged out on every device.")

    def update_name(self, name: str) -> dict[str, Any]:
        self.auth.user = self._json("PATCH", "/auth/me", json={"name": name})
        return self.auth.user

    def change_password(self, current_password: str, new_password: str) -> None:
        self.request(
            "POST",
            "/auth/change-password",
            json={"current_password": current_password, "new_password": new_password},
        )

    # -- recovery and verification ---------------------------------------------------------

    def password_policy(self) -> dict[str, Any]:
        return self._json("GET", "/auth/password-policy", authenticated=False)

    def request_password_reset(self, email: str) -> str:
        """The API's answer, the same whether or not the address has an account."""
        answer = self._json(
            "POST", "/auth/password-reset/request", authenticated=False, json={"email": email}
        )
        return answer["detail"]

    def confirm_password_reset(self, token: str, new_password: str) -> None:
        self.request(
            "POST",
            "/auth/password-reset/confirm",
            authenticated=False,
            json={"token": token, "new_password": new_password},
        )

    def request_email_verification(self) -> str:
        return self._json("POST", "/auth/verify-email/request")["detail"]

    def confirm_email_verification(self, token: str) -> dict[str, Any]:
        return self._json(
            "POST", "/auth/verify-email/confirm", authenticated=False, json={"token": token}
        )

    def sessions(self) -> list[dict[str, Any]]:
        return self._json("GET", "/auth/sessions")

    def revoke_session(self, session_id: int) -> None:
        self.request("DELETE", f"/auth/sessions/{session_id}")

    def login_history(
        self, *, limit: int = 20, offset: int = 0, success: bool | None = None
    ) -> dict[str, Any]:
        params = _params(limit=limit, offset=offset, success=success)
        return self._json("GET", "/auth/login-history", params=params)

    # -- two-factor authentication ---------------------------------------------------------

    def mfa_status(self) -> dict[str, Any]:
        return self._json("GET", "/auth/mfa")

    def mfa_setup(self) -> dict[str, Any]:
        """A new pending secret: `{secret, otpauth_uri, qr_svg}`."""
        return self._json("POST", "/auth/mfa/totp/setup")

    def mfa_enable(self, code: str) -> list[str]:
        """Turns 2FA on; returns the recovery codes (the API shows them only once). The
        session proved a code: fresh tokens say so at once (REQUIRE_ADMIN_MFA looks at them)."""
        answer = self._json("POST", "/auth/mfa/totp/enable", json={"code": code})
        self._refresh(used_access_token=self._access_token())
        return answer["recovery_codes"]

    def mfa_regenerate_codes(self, code: str) -> list[str]:
        answer = self._json("POST", "/auth/mfa/recovery-codes", json={"code": code})
        return answer["recovery_codes"]

    def mfa_disable(self, password: str, code: str) -> None:
        self.request("POST", "/auth/mfa/disable", json={"password": password, "code": code})

    # -- images and jobs -------------------------------------------------------------------

    def images(self, *, limit: int = 20, offset: int = 0) -> dict[str, Any]:
        return self._json("GET", "/images", params={"limit": limit, "offset": offset})

    def image(self, image_id: int) -> dict[str, Any]:
        return self._json("GET", f"/images/{image_id}")

    def upload(self, filename: str, content: bytes, media_type: str | None) -> dict[str, Any]:
        files = {"file": (filename, content, media_type or "application/octet-stream")}
        return self._json("POST", "/images", files=files, timeout=TRANSFER_TIMEOUT)

    def image_content(self, image_id: int) -> Download:
        response = self.request("GET", f"/images/{image_id}/content", timeout=TRANSFER_TIMEOUT)
        media_type = response.headers.get("Content-Type", "application/octet-stream")
        return Download(response.content, media_type)

    def thumbnail(self, image_id: int, size: int = 256) -> bytes:
        return self.request("GET", f"/images/{image_id}/thumbnail", params={"size": size}).content

    def delete_image(self, image_id: int) -> None:
        self.request("DELETE", f"/images/{image_id}")

    def process(self, image_id: int, operations: list[dict[str, Any]]) -> dict[str, Any]:
        """Queues a job (202) and returns it; follow it with `job()`."""
        body = {"operations": operations, "wait": False}
        return self._json("POST", f"/images/{image_id}/process", json=body)

    def process_batch(
        self, image_ids: list[int], operations: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        body = {"image_ids": image_ids, "operations": operations}
        return self._json("POST", "/images/process-batch", json=body)["jobs"]

    def jobs(self, *, limit: int = 20, offset: int = 0, status: str | None = None) -> dict:
        params = _params(limit=limit, offset=offset, status=status)
        return self._json("GET", "/jobs", params=params)

    def job(self, job_id: int) -> dict[str, Any]:
        return self._json("GET", f"/jobs/{job_id}")

    # -- API keys --------------------------------------------------------------------------

    def api_keys(self) -> list[dict[str, Any]]:
        answer = self._json("GET", "/api-keys")
        # The contract says "list"; accept a page too.
        return answer["items"] if isinstance(answer, dict) else answer

    def create_api_key(self, name: str, expires_in_days: int | None) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name}
        if expires_in_days:
            body["expires_in_days"] = expires_in_days
        return self._json("POST", "/api-keys", json=body)

    def revoke_api_key(self, key_id: int) -> None:
        self.request("DELETE", f"/api-keys/{key_id}")

    # -- administration --------------------------------------------------------------------

    def users(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        q: str | None = None,
        role: str | None = None,
        is_active: bool | None = None,
    ) -> dict[str, Any]:
        params = _params(limit=limit, offset=offset, q=q, role=role, is_active=is_active)
        return self._json("GET", "/users", params=params)

    def update_user(self, user_id: int, **changes: Any) -> dict[str, Any]:
        return self._json("PATCH", f"/users/{user_id}", json=changes)

    def send_password_reset(self, user_id: int) -> str:
        return self._json("POST", f"/users/{user_id}/password-reset")["detail"]

    def reset_user_mfa(self, user_id: int) -> None:
        self.request("DELETE", f"/users/{user_id}/mfa")

    def all_login_history(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        username: str | None = None,
        success: bool | None = None,
    ) -> dict[str, Any]:
        params = _params(limit=limit, offset=offset, username=username, success=success)
        return self._json("GET", "/admin/login-history", params=params)

    def stats(self) -> dict[str, Any]:
        return self._json("GET", "/admin/stats")

    def events(
        self,
        *,
        limit: int = 20,
        offset: int = 0,
        event_type: str | None = None,
        state: str | None = None,
    ) -> dict[str, Any]:
        params = _params(limit=limit, offset=offset, type=event_type, state=state)
        return self._json("GET", "/admin/events", params=params)

    def operations(self, window_minutes: int = 60) -> dict[str, Any]:
        return self._json("GET", "/admin/operations", params=_params(window_minutes=window_minutes))


def _params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; booleans as the API spells them."""
    params: dict[str, Any] = {}
    for name, value in values.items():
        if value is None or value == "":
            continue
        params[name] = str(value).lower() if isinstance(value, bool) else value
    return params
