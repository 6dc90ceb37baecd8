"""User administration: search, role and activation changes, soft deletion, stats, audit log.

Roles are checked by the router dependencies (`AdminUser`, `SelfOrAdmin`); these functions
enforce the rules that hold whoever calls them, such as "one active admin always remains".
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.db import writes
from api.models import AuditEntry, Image, Job, JobStatus, LoginEvent, Role, User, utcnow
from api.repositories.pagination import fetch_page
from api.schemas.admin import AdminUserOut
from api.schemas.common import PageParams
from api.schemas.event import EventType
from api.services.api_keys import revoke_user_api_keys
from api.services.audit import record_user_audit
from api.services.errors import Conflict
from api.services.events import record_event
from api.services.images import delete_user_images
from api.services.sessions import revoke_user_sessions
from api.services.user_cache import UserCache
from api.services.users import get_user

LAST_ADMIN = "The last active administrator cannot be demoted, deactivated or deleted"
STATS_WINDOW = timedelta(hours=24)
LIKE_ESCAPE = "\\"


def _contains_pattern(text: str) -> str:
    """A LIKE pattern matching `text` literally anywhere (usernames contain `_`)."""
    escaped = (
        text.lower()
        .replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", f"{LIKE_ESCAPE}%")
        .replace("_", f"{LIKE_ESCAPE}_")
    )
    return f"%{escaped}%"


def users_query(
    *,
    q: str | None = None,
    role: Role | None = None,
    is_active: bool | None = None,
    deleted: bool | None = None,
) -> Select[tuple[User]]:
    """Newest first; `q` matches lower(username/email/name), trigram-indexed on PostgreSQL."""
    statement = select(User)
    if q:
        pattern = _contains_pattern(q)
        statement = statement.where(
            or_(
                *(
                    func.lower(column).like(pattern, escape=LIKE_ESCAPE)
                    for column in (User.username, User.email, User.name)
                )
            )
        )
    if role is not None:
        statement = statement.where(User.role == role.value)
    if is_active is not None:
        statement = statement.where(User.is_active.is_(is_active))
    if deleted is not None:
        missing = User.deleted_at.is_(None)
        statement = statement.where(~missing if deleted else missing)
    return statement.order_by(User.created_at.desc(), User.id.desc())


def users_page(
    db: Session,
    page: PageParams,
    *,
    q: str | None = None,
    role: Role | None = None,
    is_active: bool | None = None,
    deleted: bool | None = None,
    cache: UserCache | None = None,
) -> tuple[list[Any], int]:
    """A page of users: rows, or with the cache on the AdminUserOut of each, maybe cached."""
    statement = users_query(q=q, role=role, is_active=is_active, deleted=deleted)
    if cache is None:
        return fetch_page(db, statement, page)

    def load() -> tuple[list[dict[str, Any]], int]:
        users, total = fetch_page(db, statement, page)
        out = [AdminUserOut.model_validate(user).model_dump(mode="json") for user in users]
        return out, total

    filters = {"q": q, "role": role, "is_active": is_active, "deleted": deleted}
    return cache.users_page({**filters, "limit": page.limit, "offset": page.offset}, load)


def _keeps_admin_rights(user: User) -> bool:
    return user.is_admin and user.is_active


def _ensure_another_active_admin(db: Session, user: User) -> None:
    """Refuses to take away the last active admin.

    The active admins' rows are locked in id order (PostgreSQL), so two admins demoting each
    other at once are serialised and the second sees the first's change; SQLite serialises
    writers by itself.
    """
    admin_ids = db.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN.value, User.is_active.is_(True))
        .order_by(User.id)
        .with_for_update()
    ).all()
    if all(admin_id == user.id for admin_id in admin_ids):
        raise Conflict(LAST_ADMIN)


@dataclass(frozen=True, slots=True)
class Revoked:
    sessions: int
    api_keys: int

    def as_details(self) -> dict[str, object]:
        return {"sessions_revoked": self.sessions, "api_keys_revoked": self.api_keys}


def _revoke_credentials(db: Session, user_id: int, reason: str) -> Revoked:
    """Every session and API key of the user stops working when the caller's unit commits."""
    return Revoked(
        sessions=revoke_user_sessions(db, user_id, reason=reason),
        api_keys=revoke_user_api_keys(db, user_id),
    )


def update_user(
    db: Session,
    actor: User,
    user_id: int,
    *,
    role: Role | None,
    is_active: bool | None,
    client: ClientInfo,
) -> User:
    """Changes role and/or activation; deactivation revokes sessions and API keys at once."""
    with writes(db):
        user = get_user(db, user_id)
        if user.deleted_at is not None:
            raise Conflict("This account was deleted and cannot be changed")
        new_role = role.value if role is not None else user.role
        new_active = is_active if is_active is not None else user.is_active
        if _keeps_admin_rights(user) and (new_role != Role.ADMIN.value or not new_active):
            _ensure_another_active_admin(db, user)

        if new_role != user.role:
            record_user_audit(
                db, actor, user, "user.role_changed", client, {"from": user.role, "to": new_role}
            )
            user.role = new_role
            record_event(db, EventType.USER_ROLE_CHANGED, {"user_id": user.id, "role": new_role})
        if new_active != user.is_active:
            user.is_active = new_active
            if new_active:
                record_user_audit(db, actor, user, "user.activated", client, {})
                record_event(db, EventType.USER_REACTIVATED, {"user_id": user.id})
            else:
                revoked = _revoke_credentials(db, user.id, "deactivated")
                record_user_audit(db, actor, user, "user.deactivated", client, revoked.as_details())
                record_event(db, EventType.USER_DEACTIVATED, {"user_id": user.id})
    return user


def delete_user(db: Session, actor: User, user_id: int, *, client: ClientInfo) -> None:
    """Soft-deletes an account: inactive, every credential revoked, images gone (their files
    go with the `user.deleted` event's handler, once this has committed).

    The row stays (deleted_at set), so its username and email remain taken and the audit
    trail keeps pointing at it. Deleting an already deleted account changes nothing.
    """
    with writes(db):
        user = get_user(db, user_id)
        if user.deleted_at is not None:
            return
        if _keeps_admin_rights(user):
            _ensure_another_active_admin(db, user)
        user.is_active = False
        user.deleted_at = utcnow()
        revoked = _revoke_credentials(db, user.id, "account_deleted")
        image_files = delete_user_images(db, user.id)
        details = {
            "by_self": actor.id == user.id,
            **revoked.as_details(),
            "images_deleted": len(image_files),
        }
        record_user_audit(db, actor, user, "user.deleted", client, details)
        record_event(db, EventType.USER_DELETED, {"user_id": user.id, "storage_keys": image_files})


@dataclass(frozen=True, slots=True)
class Stats:
    users: int
    active_users: int
    deleted_users: int
    images: int
    jobs_by_status: dict[str, int]
    logins_24h: int
    failed_logins_24h: int


def stats(db: Session) -> Stats:
    """Site-wide figures from four aggregate queries, whatever the number of rows."""
    not_deleted = User.deleted_at.is_(None)
    users, active_users, deleted_users = db.execute(
        select(
            func.count().filter(not_deleted),
            func.count().filter(not_deleted, User.is_active.is_(True)),
            func.count().filter(User.deleted_at.is_not(None)),
        ).select_from(User)
    ).one()
    images = db.scalar(select(func.count()).select_from(Image)) or 0
    jobs_by_status = {status.value: 0 for status in JobStatus}
    for status, count in db.execute(select(Job.status, func.count()).group_by(Job.status)):
        jobs_by_status[status] = count
    logins, failed_logins = db.execute(
        select(
            func.count().filter(LoginEvent.success.is_(True)),
            func.count().filter(LoginEvent.success.is_(False)),
        ).where(LoginEvent.created_at >= utcnow() - STATS_WINDOW)
    ).one()
    return Stats(
        users=users,
        active_users=active_users,
        deleted_users=deleted_users,
        images=images,
        jobs_by_status=jobs_by_status,
        logins_24h=logins,
        failed_logins_24h=failed_logins,
    )


def audit_log_page(
    db: Session,
    page: PageParams,
    *,
    action: str | None = None,
    actor_id: int | None = None,
    target_type: str | None = None,
    target_id: int | None = None,
) -> tuple[list[AuditEntry], int]:
    statement = select(AuditEntry)
    if action:
        statement = statement.where(AuditEntry.action == action)
    if actor_id is not None:
        statement = statement.where(AuditEntry.actor_id == actor_id)
    if target_type:
        statement = statement.where(AuditEntry.target_type == target_type)
    if target_id is not None:
        statement = statement.where(AuditEntry.target_id == target_id)
    statement = statement.order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    return fetch_page(db, statement, page)
