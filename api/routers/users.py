"""User administration routes: HTTP in and out only; the rules live in api/services/admin.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response, status

from api.dependencies import (
    AdminUser,
    Client,
    DbSession,
    SelfOrAdmin,
    UserCacheDep,
    admin_mfa_enforced,
)
from api.models import Role
from api.schemas.admin import AdminUserOut, UserUpdate
from api.schemas.common import (
    IdPath,
    NoControlCharacters,
    Page,
    Pagination,
    error_responses,
    to_page,
)
from api.schemas.recovery import Accepted
from api.services import admin as admin_service
from api.services import mfa as mfa_service
from api.services import recovery as recovery_service
from api.services.users import get_user

router = APIRouter(prefix="/users", tags=["users"], dependencies=[Depends(admin_mfa_enforced)])

RESET_LINK_SENT = "A password reset link is being mailed to the account's email address."


@router.get("", response_model=Page[AdminUserOut], responses=error_responses(401, 403, 422))
def list_users(
    _admin: AdminUser,
    db: DbSession,
    cache: UserCacheDep,
    page: Pagination,
    q: Annotated[
        str | None,
        Query(max_length=100, description="Case-insensitive part of username, email or name"),
        NoControlCharacters,
    ] = None,
    role: Annotated[Role | None, Query(description="Only this role")] = None,
    is_active: Annotated[bool | None, Query(description="Only active or inactive")] = None,
    deleted: Annotated[bool | None, Query(description="Only deleted or existing")] = None,
) -> Page[AdminUserOut]:
    """Every account, newest first (admins only); soft-deleted ones carry `deleted_at`."""
    items, total = admin_service.users_page(
        db, page, q=q, role=role, is_active=is_active, deleted=deleted, cache=cache
    )
    return to_page(AdminUserOut, items, total, page)


@router.get(
    "/{user_id}", response_model=AdminUserOut, responses=error_responses(401, 403, 404, 422)
)
def read_user(user_id: IdPath, _caller: SelfOrAdmin, db: DbSession) -> AdminUserOut:
    """One account: your own, or anyone's for an admin."""
    return AdminUserOut.model_validate(get_user(db, user_id), from_attributes=True)


@router.patch(
    "/{user_id}",
    response_model=AdminUserOut,
    responses=error_responses(401, 403, 404, 409, 422),
)
def update_user(
    user_id: IdPath, body: UserUpdate, admin: AdminUser, db: DbSession, client: Client
) -> AdminUserOut:
    """Changes role and/or activation (admins only). Deactivating revokes every session and
    API key of the user; the last active admin cannot be demoted or deactivated (409)."""
    user = admin_service.update_user(
        db, admin, user_id, role=body.role, is_active=body.is_active, client=client
    )
    return AdminUserOut.model_validate(user, from_attributes=True)


@router.delete(
    "/{user_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 409, 422),
)
def delete_user(user_id: IdPath, caller: SelfOrAdmin, db: DbSession, client: Client) -> Response:
    """Soft-deletes an account (your own, or anyone's for an admin): it is deactivated, its
    sessions and API keys revoked and its images deleted; username and email stay taken.
    The last active admin cannot be deleted (409)."""
    admin_service.delete_user(db, caller, user_id, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post(
    "/{user_id}/password-reset",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=Accepted,
    responses=error_responses(401, 403, 404, 422),
)
def send_password_reset(
    user_id: IdPath, admin: AdminUser, db: DbSession, client: Client
) -> Accepted:
    """Mails the account's owner a reset link (admins only; audited as
    `password_reset_sent`). It counts towards the account's RESET_EMAILS_PER_HOUR."""
    recovery_service.send_password_reset(db, admin, user_id, client=client)
    return Accepted(detail=RESET_LINK_SENT)


@router.delete(
    "/{user_id}/mfa",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 403, 404, 422),
)
def reset_mfa(user_id: IdPath, admin: AdminUser, db: DbSession, client: Client) -> Response:
    """Removes an account's two-factor authentication and recovery codes (admins only), e.g.
    for someone who lost both the device and the codes; audited as `mfa_reset`."""
    mfa_service.reset(db, admin, user_id, client=client)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
