"""Accounts: creation under the policy, lookups, and the first admin."""

from __future__ import annotations

import logging

from pydantic import EmailStr, TypeAdapter, ValidationError
from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.core.config import Settings
from api.core.db import writes
from api.core.security import PasswordHasher
from api.models import Role, User
from api.schemas.auth import Username
from api.schemas.event import EventType
from api.services.errors import Conflict, NotFound, RuleViolation
from api.services.events import record_event
from api.services.password_policy import check_password

log = logging.getLogger("pixelgate.users")


def find_user_by_login(db: Session, identifier: str) -> User | None:
    """A user by username or email, case-insensitively."""
    lowered = identifier.strip().lower()
    column = func.lower(User.email) if "@" in lowered else func.lower(User.username)
    return db.scalar(select(User).where(column == lowered))


def get_user(db: Session, user_id: int) -> User:
    user = db.get(User, user_id)
    if user is None:
        raise NotFound("User not found")
    return user


def _raise_if_taken(db: Session, username: str, email: str) -> None:
    taken = db.execute(
        select(func.lower(User.username), func.lower(User.email)).where(
            or_(
                func.lower(User.username) == username.lower(),
                func.lower(User.email) == email.lower(),
            )
        )
    ).all()
    if any(row[0] == username.lower() for row in taken):
        raise Conflict("Username is already taken")
    if taken:
        raise Conflict("Email is already registered")


def create_user(
    db: Session,
    settings: Settings,
    hasher: PasswordHasher,
    *,
    username: str,
    email: str,
    name: str,
    password: str,
    role: Role = Role.MEMBER,
    is_verified: bool = False,
) -> User:
    """Creates and commits an account and its `user.created` event (whose handler mails the
    verification link of an unverified address); policy breaches are RuleViolation,
    duplicates Conflict."""
    check_password(password, username=username, email=email, settings=settings)
    _raise_if_taken(db, username, email)
    user = User(
        username=username,
        email=email,
        name=name,
        password_hash=hasher.hash(password),
        role=role.value,
        is_verified=is_verified,
    )
    try:
        with writes(db):
            db.add(user)
            db.flush()
            record_event(db, EventType.USER_CREATED, {"user_id": user.id, "username": username})
    except IntegrityError:
        # Lost a race with a concurrent signup: say which name is taken.
        _raise_if_taken(db, username, email)
        raise
    return user


def update_profile(db: Session, user: User, *, name: str) -> User:
    with writes(db):
        user.name = name
    return user


_USERNAME_RULE = TypeAdapter(Username)
_EMAIL_RULE = TypeAdapter(EmailStr)


class AdminAccountTaken(Exception):
    """ADMIN_USERNAME or ADMIN_EMAIL belongs to an account that is not an active admin."""


def ensure_admin(db: Session, settings: Settings, hasher: PasswordHasher) -> User | None:
    """Creates the first admin from ADMIN_* settings; idempotent.

    It never promotes or revives an existing account: anyone may sign up under the configured
    name before the operator sets it, and an admin may have deactivated or deleted the account
    on purpose. Such a clash raises AdminAccountTaken for the caller to report. The name and
    email follow the rules of sign-up; a breach is a ValueError naming the variable.
    """
    if not (settings.admin_username and settings.admin_email and settings.admin_password):
        return None
    for variable, value, rule in (
        ("ADMIN_USERNAME", settings.admin_username, _USERNAME_RULE),
        ("ADMIN_EMAIL", settings.admin_email, _EMAIL_RULE),
    ):
        try:
            rule.validate_python(value)
        except ValidationError as exc:
            reason = exc.errors(include_input=False)[0]["msg"]
            raise ValueError(f"{variable} is not valid: {reason}") from None
    existing = find_user_by_login(db, settings.admin_username) or find_user_by_login(
        db, settings.admin_email
    )
    if existing is not None:
        if existing.is_admin and existing.is_active and existing.deleted_at is None:
            return existing
        raise AdminAccountTaken(
            "ADMIN_USERNAME or ADMIN_EMAIL belongs to an existing account that is not an active "
            "admin; it was left as it is (an admin can change it through PATCH /users/{id})"
        )
    try:
        user = create_user(
            db,
            settings,
            hasher,
            username=settings.admin_username,
            email=settings.admin_email,
            name=settings.admin_username,
            password=settings.admin_password.get_secret_value(),
            role=Role.ADMIN,
            # The operator chose this address: there is no one to prove it to.
            is_verified=True,
        )
    except Conflict:
        # Another worker created it a moment ago.
        return find_user_by_login(db, settings.admin_username)
    except RuleViolation as exc:
        raise ValueError(
            f"ADMIN_PASSWORD does not meet the password policy: {exc.message}"
        ) from exc
    log.info("created first admin id=%s", user.id)
    return user
