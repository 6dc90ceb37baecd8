"""Two-factor authentication routes: HTTP in and out only; the rules live in
api/services/mfa.py (and the login's second step in api/services/auth.py)."""

from __future__ import annotations

from fastapi import APIRouter, Response, status

from api.dependencies import (
    AccessClaimsDep,
    Auth,
    Client,
    CodeAttempts,
    CurrentUser,
    DbSession,
    Hasher,
    SecretBoxDep,
    SettingsDep,
)
from api.routers.refresh_cookie import token_response
from api.schemas.auth import TokenPair
from api.schemas.common import error_responses
from api.schemas.mfa import (
    CodeRequest,
    DisableRequest,
    MfaStatusOut,
    MfaVerifyRequest,
    RecoveryCodesOut,
    TotpSetupOut,
)
from api.services import mfa as mfa_service

router = APIRouter(prefix="/auth/mfa", tags=["two-factor authentication"])


def _no_store(response: Response) -> None:
    """Secrets and recovery codes must not linger in caches."""
    response.headers["Cache-Control"] = "no-store"


@router.get("", response_model=MfaStatusOut, responses=error_responses(401))
def read_status(user: CurrentUser, db: DbSession) -> MfaStatusOut:
    """Whether 2FA is on, since when, and how many recovery codes are left."""
    return MfaStatusOut.model_validate(mfa_service.status(db, user))


@router.post("/totp/setup", response_model=TotpSetupOut, responses=error_responses(401, 409))
def setup(response: Response, user: CurrentUser, db: DbSession, box: SecretBoxDep) -> TotpSetupOut:
    """Starts enrolment: a new secret, as text, as an `otpauth://` URI and as a QR code (the
    secret is never shown again). Calling again replaces a pending secret. 2FA is on only
    once `/auth/mfa/totp/enable` confirms a code."""
    _no_store(response)
    return TotpSetupOut.model_validate(mfa_service.start_setup(db, box, user))


@router.post(
    "/totp/enable",
    response_model=RecoveryCodesOut,
    responses=error_responses(400, 401, 409, 422, 429),
)
def enable(
    body: CodeRequest,
    response: Response,
    user: CurrentUser,
    claims: AccessClaimsDep,
    db: DbSession,
    limits: CodeAttempts,
    box: SecretBoxDep,
    client: Client,
) -> RecoveryCodesOut:
    """Turns 2FA on with a current code of the pending secret. Answers the ten recovery codes,
    shown only here; every other session is logged out."""
    codes = mfa_service.enable(
        db, limits, box, user, body.code, session_id=claims.session_id, client=client
    )
    _no_store(response)
    return RecoveryCodesOut(recovery_codes=codes)


@router.post(
    "/disable",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 401, 409, 422, 429),
)
def disable(
    body: DisableRequest,
    user: CurrentUser,
    db: DbSession,
    limits: CodeAttempts,
    hasher: Hasher,
    box: SecretBoxDep,
    client: Client,
) -> Response:
    """Turns 2FA off; takes the password and a code (TOTP or recovery code)."""
    mfa_service.disable(
        db, limits, hasher, box, user, password=body.password, code=body.code, client=client
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/recovery-codes",
    response_model=RecoveryCodesOut,
    responses=error_responses(400, 401, 409, 422, 429),
)
def regenerate_recovery_codes(
    body: CodeRequest,
    response: Response,
    user: CurrentUser,
    db: DbSession,
    limits: CodeAttempts,
    box: SecretBoxDep,
    client: Client,
) -> RecoveryCodesOut:
    """Ten new recovery codes for a code (TOTP or recovery code); the old ones stop working."""
    codes = mfa_service.regenerate_recovery_codes(db, limits, box, user, body.code, client=client)
    _no_store(response)
    return RecoveryCodesOut(recovery_codes=codes)


@router.post(
    "/verify",
    response_model=TokenPair,
    responses=error_responses(401, 403, 422, 429),
)
def verify(
    body: MfaVerifyRequest,
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    auth: Auth,
    client: Client,
) -> TokenPair:
    """The login's second step: the `mfa_token` from `/auth/login` with a current code of
    the authenticator app, or a recovery code. Answers the token pair and sets the refresh
    cookie, like a login; its `remember_me` decides the session's lifetime. A wrong code is
    a 401 and counts towards the account's lockout; after five wrong codes the `mfa_token`
    is refused for good (429): log in again."""
    issued = auth.verify_second_factor(
        db,
        mfa_token=body.mfa_token,
        code=body.code,
        remember_me=body.remember_me,
        client=client,
    )
    return token_response(response, issued, settings)
