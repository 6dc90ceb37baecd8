"""The Redis cache (`CACHE_URL`; empty = off) of what every authenticated request asks — "is
this session active, and who is its user?" — and of the admin list of users (`GET /users`).

Never a revoked session's way in. Entries are invalidated from the unit of work that changes
what they say, through hooks on the database's sessions, so no service has to remember:

- ORM changes to a `User` or an `AuthSession` (noticed at flush) invalidate that user's
  entries and the list; new users invalidate the list. An UPDATE statement on either table
  invalidates the users it names in its `cache_user_ids` execution option (see
  `CACHE_USER_IDS`), and every auth entry when it names none. A user's `TotpCredential`
  (whether 2FA is on, `mfa_enabled` in the list) counts as part of the user, but its
  changes take no right away.
- Twice: before the commit (after a last flush) and after it. The first makes a failure fail
  the change, when the change takes a right away (revoked session, deactivation, deletion,
  role or password change): the request is answered 503 and the database is left as it was.
  The second removes what a request running concurrently may have cached from the old rows
  in between. If Redis fails only then, the entry expires within `CACHE_TTL_S` anyway.
- Readers only store an entry if the user's version (and the global epoch) did not move
  since they looked (a check-and-set script), so an invalidation is never undone by a read
  that started before it.

Entries hold no secret (no password hash); a cached user is attached to the request's
database session as if loaded, so the route may change it and commit as usual, and any column
not cached is loaded from the database when first read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis
from sqlalchemy import event as orm_event
from sqlalchemy import inspect
from sqlalchemy.orm import (
    ORMExecuteState,
    Session,
    UOWTransaction,
    sessionmaker,
)

from api.core.config import Settings
from api.models import AuthSession, TotpCredential, User, utcnow
from api.models.base import UTCDateTime
from api.repositories.session_users import attached
from api.services.errors import ServiceBusy

log = logging.getLogger("pixelgate.cache")

PREFIX = "pixelgate:cache:"
EPOCH_KEY = f"{PREFIX}auth:epoch"
USERS_GENERATION_KEY = f"{PREFIX}users:generation"
# A user's version outlives any entry by far; its expiry only keeps Redis tidy.
VERSION_TTL_S = 24 * 3600
SOCKET_TIMEOUT_S = 1.0
# After a failed read, requests go straight to the database for a moment.
READS_PAUSED_AFTER_ERROR_S = 5.0
RETRY_AFTER_S = 5
# Execution option of an UPDATE on users or auth_sessions: the ids of the users it changes.
CACHE_USER_IDS = "cache_user_ids"

# Public, non-secret columns; any other column is loaded from the database when read.
CACHED_USER_COLUMNS = (
    "id",
    "username",
    "email",
    "name",
    "role",
    "is_active",
    "is_verified",
    "created_at",
    "updated_at",
    "last_login_at",
    "deleted_at",
)
# A change to one of these takes a right away: its invalidation must not fail silently.
RESTRICTING_USER_COLUMNS = frozenset({"is_active", "role", "deleted_at", "password_hash"})
_PENDING = "pixelgate.cache_invalidations"

_LOOKUP = """
local epoch = redis.call('GET', KEYS[1]) or '0'
local got = redis.call('HMGET', ARGV[1] .. epoch .. ':' .. ARGV[2], 'v', ARGV[3])
return {epoch, got[1] or '0', got[2] or ''}
"""
_STORE = """
local epoch = redis.call('GET', KEYS[1]) or '0'
if epoch ~= ARGV[5] then return 0 end
local key = ARGV[1] .. epoch .. ':' .. ARGV[2]
if (redis.call('HGET', key, 'v') or '0') ~= ARGV[6] then return 0 end
redis.call('HSET', key, ARGV[3], ARGV[4])
redis.call('EXPIRE', key, ARGV[7])
return 1
"""
_INVALIDATE_USERS = """
local epoch = redis.call('GET', KEYS[1]) or '0'
for i = 3, #ARGV do
  local key = ARGV[1] .. epoch .. ':' .. ARGV[i]
  redis.call('HINCRBY', key, 'v', 1)
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if name ~= 'v' then redis.call('HDEL', key, name) end
  end
  redis.call('EXPIRE', key, ARGV[2])
end
return 1
"""
_LIST_LOOKUP = """
local generation = redis.call('GET', KEYS[1]) or '0'
return {generation, redis.call('GET', ARGV[1] .. generation .. ':' .. ARGV[2]) or ''}
"""


@dataclass(slots=True)
class _Invalidations:
    user_ids: set[int] = field(default_factory=set)
    everyone: bool = False
    user_list: bool = False
    restricting: bool = False

    def __bool__(self) -> bool:
        return bool(self.user_ids or self.everyone or self.user_list)


@dataclass(frozen=True, slots=True)
class SessionLookup:
    """What the cache knew: the user (a hit), or the stamp under which to store one."""

    user: User | None
    stamp: tuple[str, str] | None  # (epoch, version) read on a miss


class UserCache:
    def __init__(self, url: str, ttl_s: float) -> None:
        self._redis = redis.Redis.from_url(
            url, socket_timeout=SOCKET_TIMEOUT_S, socket_connect_timeout=SOCKET_TIMEOUT_S
        )
        self._ttl_s = ttl_s
        self._lookup = self._redis.register_script(_LOOKUP)
        self._store = self._redis.register_script(_STORE)
        self._invalidate_users = self._redis.register_script(_INVALIDATE_USERS)
        self._list_lookup = self._redis.register_script(_LIST_LOOKUP)
        self._reads_paused_until = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> UserCache | None:
        url = settings.cache_url.get_secret_value()
        return cls(url, settings.cache_ttl_s) if url else None

    def close(self) -> None:
        self._redis.close()

    def is_reachable(self) -> bool:
        """Whether Redis answers (for /health)."""
        try:
            return bool(self._redis.ping())
        except redis.RedisError:
            return False

    # --- the authenticated-request lookup ------------------------------------------------

    def session_user(self, db: Session, session_id: int, user_id: int) -> SessionLookup:
        if not self._reads_allowed():
            return SessionLookup(None, None)
        try:
            epoch, version, raw = self._lookup(
                keys=[EPOCH_KEY], args=[f"{PREFIX}auth:", user_id, f"s:{session_id}"]
            )
        except redis.RedisError as exc:
            self._read_failed(exc)
            return SessionLookup(None, None)
        stamp = (_text(epoch), _text(version))
        if not raw:
            return SessionLookup(None, stamp)
        entry = json.loads(raw)
        now = utcnow().timestamp()
        if entry["cached_until"] <= now or entry["session_expires_at"] <= now:
            return SessionLookup(None, stamp)
        return SessionLookup(_attached_user(db, entry["user"]), None)

    def remember_session_user(
        self, stamp: tuple[str, str], session_id: int, user: User, session_expires_at: datetime
    ) -> None:
        entry = {
            "user": {name: _jsonable(getattr(user, name)) for name in _cached_columns()},
            "session_expires_at": session_expires_at.timestamp(),
            "cached_until": time.time() + self._ttl_s,
        }
        epoch, version = stamp
        try:
            self._store(
                keys=[EPOCH_KEY],
                args=[
                    f"{PREFIX}auth:",
                    user.id,
                    f"s:{session_id}",
                    json.dumps(entry),
                    epoch,
                    version,
                    max(1, round(self._ttl_s)),
                ],
            )
        except redis.RedisError as exc:
            self._read_failed(exc)

    # --- the admin list of users -----------------------------------------------------------

    def users_page(
        self, params: dict[str, Any], load: Callable[[], tuple[list[dict[str, Any]], int]]
    ) -> tuple[list[dict[str, Any]], int]:
        """The page for `params`, from the cache or from `load` (then cached)."""
        digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
        generation: str | None = None
        if self._reads_allowed():
            try:
                generation_raw, raw = self._list_lookup(
                    keys=[USERS_GENERATION_KEY], args=[f"{PREFIX}users:", digest]
                )
                generation = _text(generation_raw)
                if raw:
                    cached = json.loads(raw)
                    return cached["items"], cached["total"]
            except redis.RedisError as exc:
                self._read_failed(exc)
        items, total = load()
        if generation is not None:
            key = f"{PREFIX}users:{generation}:{digest}"
            value = json.dumps({"items": items, "total": total})
            try:
                self._redis.set(key, value, ex=max(1, round(self._ttl_s)))
            except redis.RedisError as exc:
                self._read_failed(exc)
        return items, total

    # --- invalidation, from the database sessions' hooks -----------------------------------

    def watch(self, session_factory: sessionmaker[Session]) -> None:
        orm_event.listen(session_factory, "after_flush", self._note_flushed_changes)
        orm_event.listen(session_factory, "do_orm_execute", self._note_statement)
        orm_event.listen(session_factory, "before_commit", self._before_commit)
        orm_event.listen(session_factory, "after_commit", self._after_commit)
        orm_event.listen(session_factory, "after_rollback", self._after_rollback)

    @staticmethod
    def _pending(session: Session) -> _Invalidations:
        pending = session.info.get(_PENDING)
        if pending is None:
            pending = session.info[_PENDING] = _Invalidations()
        return pending

    def _note_flushed_changes(self, session: Session, _context: UOWTransaction) -> None:
        for instance in (*session.dirty, *session.deleted):
            changed = instance in session.deleted or session.is_modified(instance)
            if isinstance(instance, User) and changed:
                pending = self._pending(session)
                pending.user_ids.add(instance.id)
                pending.user_list = True
                pending.restricting |= _changed(instance, RESTRICTING_USER_COLUMNS)
            elif isinstance(instance, AuthSession) and changed:
                pending = self._pending(session)
                pending.user_ids.add(instance.user_id)
                pending.restricting |= _changed(instance, {"revoked_at"})
        for instance in (*session.new, *session.dirty, *session.deleted):
            if isinstance(instance, TotpCredential):
                pending = self._pending(session)
                pending.user_ids.add(instance.user_id)
                pending.user_list = True
        if any(isinstance(instance, User) for instance in session.new):
            self._pending(session).user_list = True

    def _note_statement(self, state: ORMExecuteState) -> None:
        if not (state.is_update or state.is_delete):
            return
        mappers = {mapper.class_ for mapper in state.all_mappers}
        if not mappers & {User, AuthSession, TotpCredential}:
            return
        pending = self._pending(state.session)
        pending.restricting |= bool(mappers & {User, AuthSession})
        user_ids = state.execution_options.get(CACHE_USER_IDS)
        if user_ids is None:
            pending.everyone = True
        else:
            pending.user_ids.update(user_ids)
        pending.user_list |= bool(mappers & {User, TotpCredential})

    def _before_commit(self, session: Session) -> None:
        if _PENDING not in session.info and not (session.new or session.dirty or session.deleted):
            return
        session.flush()  # so that the last changes are noted too
        pending = session.info.get(_PENDING)
        if not pending:
            return
        try:
            self._invalidate(pending)
        except redis.RedisError as exc:
            if pending.restricting:
                log.error("cache unreachable: change refused (%s)", type(exc).__name__)
                raise ServiceBusy(
                    "The cache is unavailable, so this change cannot be made safely; "
                    "try again shortly",
                    RETRY_AFTER_S,
                ) from exc
            log.warning("cache unreachable: entries expire by themselves (%s)", type(exc).__name__)

    def _after_commit(self, session: Session) -> None:
        pending = session.info.pop(_PENDING, None)
        if not pending:
            return
        try:
            self._invalidate(pending)
        except redis.RedisError as exc:
            level = logging.ERROR if pending.restricting else logging.WARNING
            log.log(
                level,
                "cache invalidation after commit failed; entries expire within %s s (%s)",
                self._ttl_s,
                type(exc).__name__,
            )

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(_PENDING, None)

    def _invalidate(self, pending: _Invalidations) -> None:
        pipeline = self._redis.pipeline(transaction=False)
        if pending.everyone:
            pipeline.incr(EPOCH_KEY)
        elif pending.user_ids:
            self._invalidate_users(
                keys=[EPOCH_KEY],
                args=[f"{PREFIX}auth:", VERSION_TTL_S, *sorted(pending.user_ids)],
                client=pipeline,
            )
        if pending.user_list:
            pipeline.incr(USERS_GENERATION_KEY)
        pipeline.execute()

    # --- Redis trouble -----------------------------------------------------------------------

    def _reads_allowed(self) -> bool:
        return time.monotonic() >= self._reads_paused_until

    def _read_failed(self, exc: redis.RedisError) -> None:
        with self._lock:
            self._reads_paused_until = time.monotonic() + READS_PAUSED_AFTER_ERROR_S
        log.warning("cache unreachable, reading the database (%s)", type(exc).__name__)


def _cached_columns() -> tuple[str, ...]:
    columns = inspect(User).columns.keys()
    return tuple(name for name in CACHED_USER_COLUMNS if name in columns)


def _attached_user(db: Session, fields: dict[str, Any]) -> User:
    """The cached user as a persistent object of `db` (no query), or the one already there."""
    values = {name: _parsed(name, fields[name]) for name in _cached_columns() if name in fields}
    return attached(db, User, values)


def _changed(instance: object, names: set[str] | frozenset[str]) -> bool:
    attributes = inspect(instance).attrs
    return any(attributes[name].history.has_changes() for name in names if name in attributes)


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _parsed(name: str, value: Any) -> Any:
    if value is not None and isinstance(inspect(User).columns[name].type, UTCDateTime):
        return datetime.fromisoformat(value)
    return value


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
