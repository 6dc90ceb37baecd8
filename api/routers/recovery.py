"""Account recovery and email verification routes: HTTP in and out only; the rules live in
api/services/recovery.py, and the mails go out from event handlers after the answer."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.dependencies import (
    Client,
    CurrentUser,
    DbSession,
    Hasher,
    RateLimiterDep,
    SettingsDep,
)
from api.schemas.auth import UserOut
from api.schemas.common import error_responses
from api.schemas.recovery import (
    Accepted,
    EmailVerificationConfirm,
    PasswordResetConfirm,
    PasswordResetRequest,
)
from api.services import recovery as recovery_service

router = APIRouter(prefix="/auth", tags=["account recovery"])

RESET_REQUESTED = (
    "If an account with that email exists, we have sent it a link to reset the password."
)
VERIFICATION_REQUESTED = "We are sending a verification link to your email address."


@router.post(
    "/password-reset/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(422, 429),
)
def request_password_reset(
    body: PasswordResetRequest,
    db: DbSession,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    client: Client,
) -> Accepted:
    """Mails a reset link if the address belongs to an account. The answer is the same,
    in body, status and timing, whether or not it does; the mail is sent after it."""
    recovery_service.request_password_reset(db, settings, limiter, email=body.email, client=client)
    return Accepted(detail=RESET_REQUESTED)


@router.post(
    "/password-reset/confirm",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 422),
)
def confirm_password_reset(
    body: PasswordResetConfirm, db: DbSession, settings: SettingsDep, hasher: Hasher
) -> Response:
    """Sets a new password with a mailed link and logs the account out everywhere; no tokens
    are issued (log in afresh)."""
    recovery_service.confirm_password_reset(
        db, settings, hasher, token=body.token, new_password=body.new_password
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/verify-email/request",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(401, 409, 429),
)
def request_email_verification(
    user: CurrentUser,
    db: DbSession,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    client: Client,
) -> Accepted:
    """Mails a new verification link to the caller's address (older links stop working)."""
    recovery_service.request_email_verification(db, settings, limiter, user, client=client)
    return Accepted(detail=VERIFICATION_REQUESTED)


@router.post(
    "/verify-email/confirm",
    response_model=UserOut,
    responses=error_responses(400, 422),
)
def confirm_email_verification(body: EmailVerificationConfirm, db: DbSession) -> UserOut:
    """Marks the address verified with a mailed link (no login needed)."""
    return UserOut.model_validate(recovery_service.confirm_email_verification(db, token=body.token))
