from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class PasswordPolicyOut(BaseModel):
    """The configured rules; `rules` says them in words for a form to show as they are."""

    model_config = ConfigDict(from_attributes=True)

    min_length: int = Field(description="Minimum length in characters")
    max_bytes: int = Field(description="Maximum length in bytes of UTF-8 (bcrypt's limit: 72)")
    require_upper: bool
    require_lower: bool
    require_digit: bool
    require_symbol: bool
    block_common: bool = Field(description="Commonly used passwords are refused (case ignored)")
    not_username_or_email: bool = Field(
        True, description="The username or email is never accepted as the password"
    )
    rules: list[str]
