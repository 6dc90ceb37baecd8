"""Encryption at rest for secrets the service must read back (TOTP secrets), unlike passwords
and tokens, which are only ever compared and so are stored as hashes."""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from api.core.config import Settings

# HKDF's `info`: a key derived from JWT_SECRET_KEY for this purpose is unrelated to the JWT
# signing key and to any key derived for another purpose.
DERIVED_KEY_PURPOSE = b"pixelgate/mfa-totp-secret/v1"


class UndecryptableSecret(Exception):
    """The ciphertext was made with another key (MFA_ENCRYPTION_KEY or JWT_SECRET_KEY changed)
    or was altered."""


class SecretBox:
    """Fernet (AES-128-CBC with HMAC-SHA256): authenticated, so a tampered value is refused."""

    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.mfa_encryption_key is not None:
            return cls(settings.mfa_encryption_key.get_secret_value().encode())
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=DERIVED_KEY_PURPOSE
        ).derive(settings.jwt_secret_key.get_secret_value().encode())
        return cls(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise UndecryptableSecret() from None
