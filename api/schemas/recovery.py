from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, EmailStr, StringConstraints

from api.schemas.auth import Password

# Tokens are 43 URL-safe characters; the bound only keeps junk input small.
LinkToken = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class PasswordResetRequest(BaseModel):
    email: EmailStr


class PasswordResetConfirm(BaseModel):
    token: LinkToken
    new_password: Password


class EmailVerificationConfirm(BaseModel):
    token: LinkToken


class Accepted(BaseModel):
    """202: the request is taken; what it causes (a mail) happens after this answer."""

    detail: str
