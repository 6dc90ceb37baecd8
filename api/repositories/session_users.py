"""The lookup every authenticated request makes, as one Core select on a connection of its own.

Profiled under load, the ORM's version of this query (statement construction, the session's
transaction, eager loading of `totp`, the commit that ended it) cost about 0.6 ms of CPU per
request; this costs about a third of that. The rows become ordinary persistent objects of the
request's session (`attached`), so a route may change its user and commit as usual.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, Row, Select, bindparam, inspect, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Session, make_transient_to_detached
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from api.models import AuthSession, TotpCredential, User

ModelT = TypeVar("ModelT")

_users = User.__table__
_sessions = AuthSession.__table__
_totp = TotpCredential.__table__
_TOTP_PREFIX = "totp_"

# Built once: a statement object reused keeps its compiled form and cache key memoized.
_USER_AND_TOTP = select(
    *_users.c,
    *(column.label(f"{_TOTP_PREFIX}{column.key}") for column in _totp.c),
)
USER_BY_ID = _USER_AND_TOTP.select_from(_users.outerjoin(_totp)).where(
    _users.c.id == bindparam("user_id")
)
USER_OF_ACTIVE_SESSION = (
    _USER_AND_TOTP.add_columns(_sessions.c.expires_at.label("session_expires_at"))
    .select_from(_users.join(_sessions, _sessions.c.user_id == _users.c.id).outerjoin(_totp))
    .where(
        _users.c.id == bindparam("user_id"),
        _sessions.c.id == bindparam("session_id"),
        _sessions.c.revoked_at.is_(None),
        _sessions.c.expires_at > bindparam("now"),
    )
)


@dataclass(frozen=True)
class SessionUser:
    user: User
    session_expires_at: datetime | None


def _lookup(
    user_id: int, session_id: int | None, now: datetime
) -> tuple[Select[Any], dict[str, Any]]:
    if session_id is None:
        return USER_BY_ID, {"user_id": user_id}
    return USER_OF_ACTIVE_SESSION, {"user_id": user_id, "session_id": session_id, "now": now}


def find_user(
    connection: Connection, db: Session, user_id: int, session_id: int | None, now: datetime
) -> SessionUser | None:
    """The user (attached to `db`), if it exists and, given a session, that session is one of
    theirs that is neither revoked nor expired."""
    return _session_user(db, connection.execute(*_lookup(user_id, session_id, now)).first())


async def find_user_awaiting(
    connection: AsyncConnection, db: Session, user_id: int, session_id: int | None, now: datetime
) -> SessionUser | None:
    """`find_user` on a connection of the lookup's asyncpg pool (`Database.lookup_engine`)."""
    result = await connection.execute(*_lookup(user_id, session_id, now))
    return _session_user(db, result.first())


def _session_user(db: Session, row: Row[Any] | None) -> SessionUser | None:
    if row is None:
        return None
    fields = row._mapping
    user = attached(db, User, {column.key: fields[column.key] for column in _users.c})
    if "totp" not in user.__dict__:
        totp = None
        if fields[f"{_TOTP_PREFIX}user_id"] is not None:
            totp_fields = {c.key: fields[f"{_TOTP_PREFIX}{c.key}"] for c in _totp.c}
            totp = attached(db, TotpCredential, totp_fields)
        set_committed_value(user, "totp", totp)
    return SessionUser(user, fields.get("session_expires_at"))


def attached(db: Session, model: type[ModelT], fields: dict[str, Any]) -> ModelT:
    """A row's values as a persistent object of `db`, as if loaded (no query, no pending
    change), or the object `db` already holds for that row.

    Filled the way the ORM's own loading fills an object, into its `__dict__`: setting
    attributes one by one through the constructor records each as a change first."""
    mapper = inspect(model)
    key = identity_key(model, tuple(fields[column.key] for column in mapper.primary_key))
    present = db.identity_map.get(key)
    if present is not None:
        return present  # type: ignore[return-value]
    instance = mapper.class_manager.new_instance()
    instance.__dict__.update(fields)
    make_transient_to_detached(instance)
    db.add(instance)
    return instance
