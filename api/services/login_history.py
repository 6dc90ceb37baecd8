"""Login history: every attempt is written; lockout is derived from it."""

from __future__ import annotations

import math
from datetime import timedelta

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.config import Settings
from api.core.db import after_commit
from api.core.metrics import LOGINS
from api.models import LoginEvent, LoginFailure, User, utcnow
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams

SUCCESS_OUTCOME = "success"  # the `outcome` label of a login without a failure reason
# Failures that count towards the lockout: wrong passwords and wrong second-factor codes.
LOCKOUT_FAILURES = (LoginFailure.BAD_CREDENTIALS.value, LoginFailure.MFA_FAILED.value)


def record_login_attempt(
    db: Session,
    *,
    username_attempted: str,
    user: User | None,
    failure: LoginFailure | None,
    client: ClientInfo,
) -> LoginEvent:
    event = LoginEvent(
        user_id=user.id if user else None,
        username_attempted=username_attempted[:320],
        success=failure is None,
        failure_reason=failure.value if failure else None,
        ip_address=client.ip_address,
        user_agent=client.user_agent,
    )
    db.add(event)
    outcome = failure.value if failure else SUCCESS_OUTCOME
    after_commit(db, LOGINS.labels(outcome).inc)
    return event


def lockout_seconds_left(
    db: Session, *, username_attempted: str, user: User | None, settings: Settings
) -> int | None:
    """Seconds until login may be tried again after too many consecutive bad passwords (or
    wrong second-factor codes).

    Counted per account when the name matches one (so username and email share a budget),
    else per attempted name, so unknown names lock exactly like real ones.
    """
    window = timedelta(minutes=settings.lockout_minutes)
    now = utcnow()
    subject = (
        LoginEvent.user_id == user.id
        if user is not None
        else func.lower(LoginEvent.username_attempted) == username_attempted.lower()
    )
    recent = db.execute(
        select(LoginEvent.success, LoginEvent.created_at)
        .where(
            subject,
            LoginEvent.created_at >= now - window,
            or_(
                LoginEvent.success.is_(True),
                LoginEvent.failure_reason.in_(LOCKOUT_FAILURES),
            ),
        )
        .order_by(LoginEvent.created_at.desc(), LoginEvent.id.desc())
        .limit(settings.max_login_attempts)
    ).all()
    if len(recent) < settings.max_login_attempts or any(row.success for row in recent):
        return None
    unlocks_at = recent[-1].created_at + window
    return max(1, math.ceil((unlocks_at - now).total_seconds()))


def login_history_query(
    *, user_id: int | None = None, username: str | None = None, success: bool | None = None
) -> Select[tuple[LoginEvent]]:
    statement = select(LoginEvent)
    if user_id is not None:
        statement = statement.where(LoginEvent.user_id == user_id)
    if username:
        statement = statement.where(func.lower(LoginEvent.username_attempted) == username.lower())
    if success is not None:
        statement = statement.where(LoginEvent.success.is_(success))
    return statement.order_by(LoginEvent.created_at.desc(), LoginEvent.id.desc())


def login_history_page(
    db: Session,
    page: PageParams,
    *,
    user_id: int | None = None,
    username: str | None = None,
    success: bool | None = None,
) -> tuple[list[LoginEvent], int]:
    statement = login_history_query(user_id=user_id, username=username, success=success)
    return fetch_page(db, statement, page)
