"""Who is calling, from an access token: the check every authenticated request makes.

Built once per app (`create_app`), so a request resolves one dependency for it rather than
one each for the codec, the database and the cache.
"""

from __future__ import annotations

from enum import Enum

from sqlalchemy.orm import Session

from api.core.db import Database
from api.core.log_context import note_user
from api.core.security import AccessClaims, AccessTokenCodec, InvalidAccessToken
from api.models import User
from api.services.errors import NotAuthenticated
from api.services.sessions import user_of_active_session, user_of_active_session_awaiting
from api.services.user_cache import UserCache

NOT_AUTHENTICATED = "Not authenticated"
INVALID_TOKEN = "Invalid or expired access token"


class LookupPath(Enum):
    """Where the lookup of an authenticated request runs."""

    # SQLite without the Redis cache: nothing in it waits (WAL readers never wait for
    # writers), a local page read, cheaper than handing it to a thread.
    ON_LOOP = "on_loop"
    # PostgreSQL without the Redis cache: awaited on the event loop (asyncpg).
    AWAITED = "awaited"
    # The Redis cache on (its client blocks), or PostgreSQL without an asyncpg twin.
    THREAD = "thread"


class Authenticator:
    def __init__(self, codec: AccessTokenCodec, database: Database, cache: UserCache | None):
        self._codec = codec
        self._cache = cache
        self._lookup_engine = database.lookup_engine if cache is None else None
        if self._lookup_engine is not None:
            self.lookup_path = LookupPath.AWAITED
        elif cache is None and database.is_embedded:
            self.lookup_path = LookupPath.ON_LOOP
        else:
            self.lookup_path = LookupPath.THREAD

    def claims(self, token: str | None) -> AccessClaims:
        if not token:
            raise NotAuthenticated(NOT_AUTHENTICATED)
        try:
            return self._codec.decode(token)
        except InvalidAccessToken as exc:
            raise NotAuthenticated(INVALID_TOKEN) from exc

    def user(self, db: Session, claims: AccessClaims) -> User:
        """The token's user, if it still exists, is active, and its session was not revoked.

        Read on a connection of its own: the route then holds no transaction (nor pooled
        connection) while it awaits anything, such as an upload's body or a job."""
        user = user_of_active_session(db, claims.session_id, claims.user_id, self._cache)
        return self._admitted(user)

    async def user_awaiting(self, db: Session, claims: AccessClaims) -> User:
        """`user`, on `LookupPath.AWAITED`: the read is awaited on the lookup's asyncpg pool."""
        assert self._lookup_engine is not None
        user = await user_of_active_session_awaiting(
            self._lookup_engine, db, claims.session_id, claims.user_id
        )
        return self._admitted(user)

    @staticmethod
    def _admitted(user: User | None) -> User:
        if user is None or not user.is_active:
            raise NotAuthenticated(INVALID_TOKEN)
        note_user(user.id)
        return user
