"""The password policy, published so that sign-up, change and reset forms can show it."""

from __future__ import annotations

from fastapi import APIRouter

from api.dependencies import SettingsDep
from api.schemas.password_policy import PasswordPolicyOut
from api.services.password_policy import PasswordPolicy

router = APIRouter(prefix="/auth", tags=["auth"])


@router.get("/password-policy", response_model=PasswordPolicyOut)
async def password_policy(settings: SettingsDep) -> PasswordPolicyOut:
    """The rules every new password must meet (no authentication needed)."""
    return PasswordPolicyOut.model_validate(
        PasswordPolicy.from_settings(settings), from_attributes=True
    )
