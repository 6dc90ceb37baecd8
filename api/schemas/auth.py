from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StringConstraints

from api.schemas.common import NoControlCharacters

Username = Annotated[
    str,
    StringConstraints(min_length=4, max_length=20, pattern=r"^[A-Za-z0-9_]+$"),
    Field(description="4–20 letters, digits or underscores; unique, case-insensitively"),
]


DisplayName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
    NoControlCharacters,
]
# Length in bytes is a policy rule (services/password_policy.py); this only bounds the input.
Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class SignupRequest(BaseModel):
    username: Username
    email: EmailStr
    name: DisplayName
    password: Password
    password_confirm: Password
    agree_terms: bool


class LoginRequest(BaseModel):
    username: Annotated[str, StringConstraints(min_length=1, max_length=320)] = Field(
        description="Username or email"
    )
    password: Password
    remember_me: bool = False


class RefreshRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)]


class LogoutRequest(BaseModel):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Access token lifetime in seconds")
    refresh_expires_in: int = Field(description="Refresh token lifetime in seconds")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username: str
    email: str
    name: str
    role: str
    is_active: bool
    is_verified: bool
    mfa_enabled: bool
    created_at: datetime
    last_login_at: datetime | None


class UpdateMeRequest(BaseModel):
    name: DisplayName


class ChangePasswordRequest(BaseModel):
    current_password: Password
    new_password: Password


class SessionOut(BaseModel):
    id: int
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    ip_address: str | None
    user_agent: str | None
    current: bool


class LoginEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    username_attempted: str
    success: bool
    failure_reason: (
        Literal["bad_credentials", "locked", "inactive", "rate_limited", "mfa_failed", "unverified"]
        | None
    )
    ip_address: str | None
    user_agent: str | None
    created_at: datetime
