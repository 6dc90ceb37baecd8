"""The token codec and the password hasher as configured; built once per app (or command)."""

from __future__ import annotations

from datetime import timedelta

from api.core.config import Settings
from api.core.security import AccessTokenCodec, PasswordHasher


def token_codec_from_settings(settings: Settings) -> AccessTokenCodec:
    return AccessTokenCodec(
        secret=settings.jwt_secret_key.get_secret_value(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        lifetime=timedelta(minutes=settings.access_token_expire_minutes),
    )


def password_hasher_from_settings(settings: Settings) -> PasswordHasher:
    return PasswordHasher(settings.bcrypt_rounds)
