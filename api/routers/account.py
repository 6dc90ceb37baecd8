"""The caller's own account (profile, password, sessions, login history): HTTP in and out only;
the rules live in api/services/auth.py and sessions.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from api.dependencies import AccessClaimsDep, Auth, CurrentUser, DbSession, SettingsDep
from api.routers.refresh_cookie import clear_refresh_cookie
from api.schemas.auth import (
    ChangePasswordRequest,
    LoginEventOut,
    SessionOut,
    UpdateMeRequest,
    UserOut,
)
from api.schemas.common import IdPath, Page, Pagination, error_responses, to_page
from api.services import sessions as session_service
from api.services import users as user_service
from api.services.login_history import login_history_page

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
def logout_all(user: CurrentUser, db: DbSession, settings: SettingsDep) -> Response:
    """Revokes every session of the caller, this one included."""
    session_service.log_out_everywhere(db, user.id)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, settings)
    return response


@router.get("/me", response_model=UserOut, responses=error_responses(401))
async def read_me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch("/me", response_model=UserOut, responses=error_responses(401, 422))
def update_me(body: UpdateMeRequest, user: CurrentUser, db: DbSession) -> UserOut:
    return UserOut.model_validate(user_service.update_profile(db, user, name=body.name))


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 401, 422),
)
def change_password(
    body: ChangePasswordRequest,
    user: CurrentUser,
    claims: AccessClaimsDep,
    db: DbSession,
    auth: Auth,
) -> Response:
    """Changes the password and signs out every other session."""
    auth.change_password(
        db,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        current_session_id=claims.session_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions", response_model=list[SessionOut], responses=error_responses(401))
def list_sessions(user: CurrentUser, claims: AccessClaimsDep, db: DbSession) -> list[SessionOut]:
    """The caller's active sessions; `current` marks the one this token belongs to."""
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            ip_address=s.ip_address,
            user_agent=s.user_agent,
            current=s.id == claims.session_id,
        )
        for s in session_service.active_sessions(db, user.id)
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422),
)
def revoke_session(session_id: IdPath, user: CurrentUser, db: DbSession) -> Response:
    session_service.revoke_own_session(db, user.id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/login-history", response_model=Page[LoginEventOut], responses=error_responses(401))
def login_history(
    user: CurrentUser,
    db: DbSession,
    page: Pagination,
    success: Annotated[bool | None, Query(description="Only successes or failures")] = None,
) -> Page[LoginEventOut]:
    items, total = login_history_page(db, page, user_id=user.id, success=success)
    return to_page(LoginEventOut, items, total, page)
