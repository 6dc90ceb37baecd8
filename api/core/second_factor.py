"""The second factor's primitives: RFC 6238 TOTP as authenticator apps speak it (pyotp), with
the step each code belongs to, and the format of recovery codes. No database, no rules."""

from __future__ import annotations

import hmac
import io
import re
import secrets
import time

import pyotp
import segno

ISSUER = "Pixelgate"
SECRET_CHARACTERS = 32  # base32: 160 bits, RFC 4226's recommended length
DRIFT_STEPS = 1  # a code of the step before or after the current one is accepted too
_TOTP_CODE = re.compile(r"\d{6}")

RECOVERY_CODE_COUNT = 10
_RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # 32 symbols: 5 bits each
_RECOVERY_GROUPS, _RECOVERY_GROUP_LENGTH = 3, 4  # 12 symbols: 60 bits
_SEPARATORS = re.compile(r"[\s-]+")


def new_totp_secret() -> str:
    return pyotp.random_base32(SECRET_CHARACTERS)


def provisioning_uri(secret: str, username: str) -> str:
    """`otpauth://totp/Pixelgate:<username>?secret=…&issuer=Pixelgate`, what apps scan."""
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=ISSUER)


def qr_svg(uri: str) -> str:
    """The URI as a standalone SVG QR code, dark on white so it scans on dark pages too."""
    buffer = io.BytesIO()
    segno.make(uri, error="m").save(
        buffer,
        kind="svg",
        scale=5,
        light="#fff",
        xmldecl=False,
        nl=False,
        title="Scan with your authenticator app",
    )
    return buffer.getvalue().decode()


def looks_like_totp_code(code: str) -> bool:
    return _TOTP_CODE.fullmatch(_SEPARATORS.sub("", code)) is not None


def matching_step(secret: str, code: str, now: float | None = None) -> int | None:
    """The latest time step within the drift window whose code is `code`, else None.

    Every step of the window is compared, in constant time, whatever matches first.
    """
    if not looks_like_totp_code(code):
        return None
    code = _SEPARATORS.sub("", code)
    totp = pyotp.TOTP(secret)
    current = totp.timecode(time.time() if now is None else now)
    matched: int | None = None
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


def new_recovery_code() -> str:
    """`abcd-efgh-ijkl`: 60 random bits (base32, so no 0/1/8/9 to mistake for letters);
    accepted in any case, with or without the hyphens."""
    symbols = "".join(
        secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_GROUPS * _RECOVERY_GROUP_LENGTH)
    )
    return "-".join(
        symbols[i : i + _RECOVERY_GROUP_LENGTH]
        for i in range(0, len(symbols), _RECOVERY_GROUP_LENGTH)
    )


def normalized_recovery_code(code: str) -> str:
    """The form that is hashed: lower case, without spaces or hyphens."""
    return _SEPARATORS.sub("", code).lower()
