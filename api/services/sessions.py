"""Login sessions and their rotating refresh tokens (one session = one token family)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.config import Settings
from api.core.db import after_commit, writes
from api.core.metrics import REFRESH_TOKEN_REUSE, REFRESHES
from api.core.security import AccessTokenCodec, new_random_token, sha256_hex
from api.models import AuthSession, RefreshToken, User, utcnow
from api.repositories.session_users import find_user, find_user_awaiting
from api.services.audit import record_audit
from api.services.errors import NotAuthenticated, NotFound
from api.services.user_cache import UserCache

log = logging.getLogger("pixelgate.sessions")

SHORT_SESSION = timedelta(days=1)
INVALID_REFRESH = "Invalid, expired or revoked refresh token"
# RFC 8176 authentication method references: a password, plus a one-time code.
PASSWORD_ONLY = ("pwd",)
PASSWORD_AND_OTP = ("pwd", "otp")


@dataclass(frozen=True, slots=True)
class IssuedTokens:
    access_token: str
    refresh_token: str
    access_expires_in: int
    refresh_expires_in: int
    remember_me: bool
    session_id: int


def _session_lifetime(settings: Settings, remember_me: bool) -> timedelta:
    return timedelta(days=settings.refresh_token_expire_days) if remember_me else SHORT_SESSION


def _issue(
    db: Session, settings: Settings, codec: AccessTokenCodec, session: AuthSession, user: User
) -> IssuedTokens:
    """Adds a fresh refresh token to `session` (sliding expiry) and signs an access token."""
    now = utcnow()
    session.expires_at = now + _session_lifetime(settings, session.remember_me)
    session.last_used_at = now
    raw_refresh = new_random_token()
    db.add(
        RefreshToken(
            session_id=session.id, token_hash=sha256_hex(raw_refresh), expires_at=session.expires_at
        )
    )
    return _token_pair(
        codec,
        user_id=user.id,
        username=user.username,
        role=user.role,
        session_id=session.id,
        amr=session.amr,
        remember_me=session.remember_me,
        raw_refresh=raw_refresh,
        refresh_expires_in=session.expires_at - now,
    )


def _token_pair(
    codec: AccessTokenCodec,
    *,
    user_id: int,
    username: str,
    role: str,
    session_id: int,
    amr: str,
    remember_me: bool,
    raw_refresh: str,
    refresh_expires_in: timedelta,
) -> IssuedTokens:
    return IssuedTokens(
        access_token=codec.encode(
            user_id=user_id,
            username=username,
            role=role,
            session_id=session_id,
            amr=tuple(amr.split()),
        ),
        refresh_token=raw_refresh,
        access_expires_in=int(codec.lifetime.total_seconds()),
        refresh_expires_in=int(refresh_expires_in.total_seconds()),
        remember_me=remember_me,
        session_id=session_id,
    )


def start_session(
    db: Session,
    settings: Settings,
    codec: AccessTokenCodec,
    user: User,
    *,
    remember_me: bool,
    client: ClientInfo,
    amr: tuple[str, ...] = PASSWORD_ONLY,
) -> IssuedTokens:
    """Opens a session for a user who just proved who they are (`amr`: how), in the caller's
    unit of work."""
    session = AuthSession(
        user_id=user.id,
        remember_me=remember_me,
        amr=" ".join(amr),
        expires_at=utcnow() + _session_lifetime(settings, remember_me),
        ip_address=client.ip_address,
        user_agent=client.user_agent,
    )
    db.add(session)
    db.flush()
    return _issue(db, settings, codec, session, user)


def _revoke(session: AuthSession, reason: str, now: datetime) -> None:
    if session.revoked_at is None:
        session.revoked_at = now
        session.revoked_reason = reason


# A refresh as four prebuilt Core statements on the session's connection: the ORM's version
# (loading token, session and user, then flushing their changes) cost about 2.5 ms of CPU per
# refresh. The session's new expiry only lengthens it, so the cache needs no invalidation.
_refresh_tokens = RefreshToken.__table__
_sessions = AuthSession.__table__
_users = User.__table__
_CLAIM_REFRESH_TOKEN = (
    update(_refresh_tokens)
    .where(
        _refresh_tokens.c.token_hash == bindparam("presented_hash"),
        _refresh_tokens.c.used_at.is_(None),
        _refresh_tokens.c.expires_at > bindparam("now"),
    )
    .values(used_at=bindparam("now"))
    .returning(_refresh_tokens.c.session_id)
)
_SESSION_TO_REFRESH = (
    select(
        _sessions.c.id,
        _sessions.c.user_id,
        _sessions.c.remember_me,
        _sessions.c.amr,
        _sessions.c.revoked_at,
        _sessions.c.expires_at,
        _users.c.username,
        _users.c.role,
        _users.c.is_active,
    )
    .join(_users, _users.c.id == _sessions.c.user_id)
    .where(_sessions.c.id == bindparam("session_id"))
)
_EXTEND_SESSION = (
    update(_sessions)
    .where(_sessions.c.id == bindparam("refreshed_session_id"))
    .values(
        expires_at=bindparam("new_expires_at"),
        last_used_at=bindparam("now"),
        ip_address=bindparam("new_ip_address"),
        user_agent=bindparam("new_user_agent"),
    )
)
_ADD_REFRESH_TOKEN = insert(_refresh_tokens).values(
    session_id=bindparam("refreshed_session_id"),
    token_hash=bindparam("new_token_hash"),
    expires_at=bindparam("new_expires_at"),
)


def rotate_refresh_token(
    db: Session, settings: Settings, codec: AccessTokenCodec, raw_token: str, client: ClientInfo
) -> IssuedTokens:
    """Trades a refresh token for a new pair; a token presented twice burns its whole session.

    The conditional UPDATE is the first statement, so among concurrent refreshes of one token
    exactly one wins (row lock on PostgreSQL, write lock on SQLite); every loser is a reuse.
    """
    token_hash = sha256_hex(raw_token)
    now = utcnow()
    with writes(db):
        connection = db.connection()
        claimed_session_id = connection.execute(
            _CLAIM_REFRESH_TOKEN, {"presented_hash": token_hash, "now": now}
        ).scalar()
        if claimed_session_id is not None:
            session = connection.execute(
                _SESSION_TO_REFRESH, {"session_id": claimed_session_id}
            ).one()
            if session.revoked_at is not None or session.expires_at <= now or not session.is_active:
                raise NotAuthenticated(INVALID_REFRESH)  # the claim is rolled back
            expires_at = now + _session_lifetime(settings, session.remember_me)
            raw_refresh = new_random_token()
            changes = {
                "refreshed_session_id": session.id,
                "now": now,
                "new_expires_at": expires_at,
                "new_ip_address": client.ip_address,
                "new_user_agent": client.user_agent,
                "new_token_hash": sha256_hex(raw_refresh),
            }
            connection.execute(_EXTEND_SESSION, changes)
            connection.execute(_ADD_REFRESH_TOKEN, changes)
            after_commit(db, REFRESHES.inc)
            return _token_pair(
                codec,
                user_id=session.user_id,
                username=session.username,
                role=session.role,
                session_id=session.id,
                amr=session.amr,
                remember_me=session.remember_me,
                raw_refresh=raw_refresh,
                refresh_expires_in=expires_at - now,
            )
        token = db.scalar(select(RefreshToken).where(RefreshToken.token_hash == token_hash))
        if token is not None and token.used_at is not None:
            _revoke_for_reuse(db, token.session, client)  # committed: the refusal is not
            after_commit(db, REFRESH_TOKEN_REUSE.inc)
    raise NotAuthenticated(INVALID_REFRESH)


def _revoke_for_reuse(db: Session, session: AuthSession, client: ClientInfo) -> None:
    # Conditional, so that among concurrent detections of one reuse only one records it.
    revoked = db.execute(
        update(AuthSession)
        .where(AuthSession.id == session.id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason="refresh_token_reuse")
        .execution_options(synchronize_session=False, cache_user_ids=(session.user_id,))
    ).rowcount
    if revoked != 1:
        return
    record_audit(
        db,
        actor_id=None,
        action="session.refresh_token_reuse",
        target_type="session",
        target_id=session.id,
        client=client,
        details={"user_id": session.user_id},
    )
    log.warning(
        "refresh token reuse detected: session=%s user=%s revoked", session.id, session.user_id
    )


def revoke_session_of_token(db: Session, raw_token: str) -> None:
    """Logout: revokes the session a refresh token belongs to; unknown tokens are ignored."""
    token = db.scalar(select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(raw_token)))
    with writes(db):
        if token is not None:
            _revoke(token.session, "logout", utcnow())


def revoke_user_sessions(
    db: Session, user_id: int, *, reason: str, keep_session_id: int | None = None
) -> int:
    """Revokes every active session of a user (but `keep_session_id`), in the caller's unit
    of work."""
    statement = (
        update(AuthSession)
        .where(AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False, cache_user_ids=(user_id,))
    )
    if keep_session_id is not None:
        statement = statement.where(AuthSession.id != keep_session_id)
    return db.execute(statement).rowcount


def log_out_everywhere(db: Session, user_id: int) -> None:
    with writes(db):
        revoke_user_sessions(db, user_id, reason="logout_all")


def mark_second_factor(db: Session, user_id: int, session_id: int) -> None:
    """The session has now proven a second factor too: its next tokens carry `otp`. Joins
    the caller's unit of work."""
    db.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, AuthSession.user_id == user_id)
        .values(amr=" ".join(PASSWORD_AND_OTP))
        .execution_options(synchronize_session=False, cache_user_ids=(user_id,))
    )


def active_sessions(db: Session, user_id: int) -> list[AuthSession]:
    return list(
        db.scalars(
            select(AuthSession)
            .where(
                AuthSession.user_id == user_id,
                AuthSession.revoked_at.is_(None),
                AuthSession.expires_at > utcnow(),
            )
            .order_by(AuthSession.last_used_at.desc(), AuthSession.id.desc())
        )
    )


def revoke_own_session(db: Session, user_id: int, session_id: int) -> None:
    session = db.get(AuthSession, session_id)
    if session is None or session.user_id != user_id:
        raise NotFound("Session not found")
    with writes(db):
        _revoke(session, "revoked_by_user", utcnow())


def user_of_active_session(
    db: Session, session_id: int | None, user_id: int, cache: UserCache | None = None
) -> User | None:
    """The user, if it exists and `session_id` (when given) is one of theirs that is neither
    revoked nor expired: what every authenticated request asks, so in one query on a
    connection of its own (the session holds no transaction afterwards), or none with the
    cache on (a hit)."""
    lookup = None
    if cache is not None and session_id is not None:
        lookup = cache.session_user(db, session_id, user_id)
        if lookup.user is not None:
            return lookup.user
    with db.get_bind().connect() as connection:
        found = find_user(connection, db, user_id, session_id, utcnow())
    if found is None:
        return None
    if lookup is not None and lookup.stamp is not None and found.session_expires_at is not None:
        cache.remember_session_user(lookup.stamp, session_id, found.user, found.session_expires_at)
    return found.user


async def user_of_active_session_awaiting(
    lookup_engine: AsyncEngine, db: Session, session_id: int | None, user_id: int
) -> User | None:
    """`user_of_active_session` (without the cache) awaited on the event loop, on a
    connection of the lookup's own pool."""
    async with lookup_engine.connect() as connection:
        found = await find_user_awaiting(connection, db, user_id, session_id, utcnow())
    return None if found is None else found.user
