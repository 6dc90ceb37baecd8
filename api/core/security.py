"""Every secret the service handles: password hashes, random tokens, their digests, JWTs.

passlib and bcrypt are used here and nowhere else (passlib 1.7 needs bcrypt < 4.1).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from jose import JWTError, jwt
from passlib.context import CryptContext

JWT_ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"
REFRESH_TOKEN_BYTES = 32  # 256 bits
BCRYPT_MAX_BYTES = 72
VERIFIED_TOKENS_CACHED = 4096


def bcrypt_can_hash(password: str) -> bool:
    """bcrypt reads at most 72 bytes and stops at NUL: anything else would be silently cut."""
    return len(password.encode()) <= BCRYPT_MAX_BYTES and "\x00" not in password


class PasswordHasher:
    """bcrypt at a configurable cost, with a dummy hash so unknown users cost the same work."""

    def __init__(self, rounds: int, concurrency: int | None = None) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds, deprecated="auto")
        self._dummy_hash = self._context.hash(secrets.token_urlsafe(16))
        # One hash per core at once, plus one to fill the gap while a finished one hands over;
        # the others wait their turn. Sixteen logins hashing at once on two cores finished no
        # sooner, and starved the event loop (`/health` p99 ~90 ms during a login storm).
        self._turns = threading.BoundedSemaphore(concurrency or (os.cpu_count() or 1) + 1)

    def hash(self, password: str) -> str:
        if not bcrypt_can_hash(password):
            raise ValueError("password is longer than 72 bytes or contains NUL")
        with self._turns:
            return self._context.hash(password)

    def verify(self, password: str, password_hash: str | None) -> bool:
        """Checks a password; an unknown user (no hash) costs the same bcrypt time.

        A password bcrypt would truncate can never be right (none was stored that way), but
        is checked against the dummy hash anyway so that it too costs the same time.
        """
        with self._turns:
            if password_hash is None or not bcrypt_can_hash(password):
                self._context.verify(
                    password if bcrypt_can_hash(password) else "", self._dummy_hash
                )
                return False
            return self._context.verify(password, password_hash)


def new_random_token(n_bytes: int = REFRESH_TOKEN_BYTES) -> str:
    return secrets.token_urlsafe(n_bytes)


def sha256_hex(value: str) -> str:
    """Digest used to store high-entropy secrets (refresh tokens, API keys)."""
    return hashlib.sha256(value.encode()).hexdigest()


def secrets_equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class InvalidAccessToken(Exception):
    """The token is missing, malformed, forged, expired or not an access token."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: int | None
    jti: str
    # How the login was proven (RFC 8176): ("pwd",) or ("pwd", "otp").
    amr: tuple[str, ...] = ()
    expires_at: int = 0  # `exp`, in seconds since the epoch


class AccessTokenCodec:
    """Issues and checks HS256 access tokens; decoding pins the algorithm, exp, iss, aud, type."""

    def __init__(self, secret: str, issuer: str, audience: str, lifetime: timedelta) -> None:
        self._secret = secret
        self._issuer = issuer
        self._audience = audience
        self.lifetime = lifetime
        # A token's signature and claims cannot change, so a token verified once need only be
        # checked for expiry after that: a dict lookup instead of ~70 µs of base64, JSON and
        # HMAC on every request. Only tokens that verified are kept (an error is not cached).
        self._verified = lru_cache(maxsize=VERIFIED_TOKENS_CACHED)(self._verify)

    def encode(
        self,
        *,
        user_id: int,
        username: str,
        role: str,
        session_id: int | None,
        amr: tuple[str, ...] = (),
    ) -> str:
        now = datetime.now(UTC)
        claims: dict[str, Any] = {
            "sub": str(user_id),
            "username": username,
            "role": role,
            "amr": list(amr),
            "type": ACCESS_TOKEN_TYPE,
            "iat": int(now.timestamp()),
            "exp": int((now + self.lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
            "iss": self._issuer,
            "aud": self._audience,
        }
        if session_id is not None:
            claims["sid"] = session_id
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def decode(self, token: str) -> AccessClaims:
        claims = self._verified(token)
        if claims.expires_at <= time.time():
            raise InvalidAccessToken("Signature has expired.")
        return claims

    def _verify(self, token: str) -> AccessClaims:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != JWT_ALGORITHM:
                raise InvalidAccessToken("unexpected algorithm")
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[JWT_ALGORITHM],
                audience=self._audience,
                issuer=self._issuer,
                # python-jose skips the audience check when `aud` is absent: require it.
                options={
                    "require_exp": True,
                    "require_iat": True,
                    "require_sub": True,
                    "require_aud": True,
                    "require_iss": True,
                    "require_jti": True,
                },
            )
        except JWTError as exc:
            raise InvalidAccessToken(str(exc)) from exc
        if claims.get("type") != ACCESS_TOKEN_TYPE:
            raise InvalidAccessToken("not an access token")
        amr = claims.get("amr", [])
        if not isinstance(amr, list) or not all(isinstance(method, str) for method in amr):
            raise InvalidAccessToken("malformed claims")
        try:
            user_id = int(claims["sub"])
            session_id = claims.get("sid")
            return AccessClaims(
                user_id=user_id,
                session_id=int(session_id) if session_id is not None else None,
                jti=str(claims.get("jti", "")),
                amr=tuple(amr),
                expires_at=int(claims["exp"]),
            )
        except (TypeError, ValueError) as exc:
            raise InvalidAccessToken("malformed claims") from exc
