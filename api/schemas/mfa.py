"""Shapes of the two-factor routes (`/auth/mfa`) and of login's second step."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.auth import Password

Code = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64),
    Field(description="The 6-digit code of the authenticator app, or a recovery code"),
]


class MfaStatusOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    enabled: bool
    enabled_at: datetime | None
    recovery_codes_left: int
    pending: bool = Field(description="A setup waits for its confirming code")


class TotpSetupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    secret: str = Field(description="Base32, for typing into the app (shown only now)")
    otpauth_uri: str
    qr_svg: str = Field(description="The otpauth URI as an SVG QR code")


class CodeRequest(BaseModel):
    code: Code


class DisableRequest(BaseModel):
    password: Password
    code: Code


class RecoveryCodesOut(BaseModel):
    recovery_codes: list[str] = Field(description="Each usable once; shown only now")


class MfaRequiredOut(BaseModel):
    """/auth/login's answer for an account with 2FA: no tokens until /auth/mfa/verify."""

    mfa_required: Literal[True] = True
    mfa_token: str = Field(description="Single use, for /auth/mfa/verify only")
    expires_in: int = Field(description="Seconds the mfa_token stays valid")


class MfaVerifyRequest(BaseModel):
    mfa_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]
    code: Code
    remember_me: bool = False
