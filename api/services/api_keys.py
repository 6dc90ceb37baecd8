"""Server-to-server API keys: issued once, kept only as a SHA-256, checked in constant time.

A key reads `pgk_<id>_<secret>`: `pgk_<id>` is the stored, visible, unique prefix used to find
the row (and to recognise the key in a list); the secret carries 256 random bits.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.db import writes
from api.core.security import new_random_token, secrets_equal, sha256_hex
from api.models import ApiKey, User, utcnow
from api.services.audit import record_audit
from api.services.errors import NotAuthenticated, NotFound

KEY_SCHEME = "pgk"
PREFIX_ID_BYTES = 8  # 16 hex characters: collisions are out of reach, the prefix stays short
_KEY_PATTERN = re.compile(rf"^({KEY_SCHEME}_[0-9a-f]{{{PREFIX_ID_BYTES * 2}}})_([A-Za-z0-9_-]+)$")
# Compared against when the prefix is unknown, so every rejection costs the same work.
_DUMMY_HASH = sha256_hex(new_random_token())

INVALID_API_KEY = "Invalid, expired or revoked API key"


@dataclass(frozen=True, slots=True)
class IssuedApiKey:
    """A newly created key: `key` exists only in this object and the creation response."""

    record: ApiKey
    key: str


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _audit(db: Session, record: ApiKey, action: str, client: ClientInfo, **details: object) -> None:
    """An owner's action on their key, named by its public prefix (never the key or hash)."""
    record_audit(
        db,
        actor_id=record.user_id,
        action=action,
        target_type="api_key",
        target_id=record.id,
        client=client,
        details={"name": record.name, "prefix": record.prefix, **details},
    )


def create_api_key(
    db: Session,
    owner: User,
    *,
    name: str,
    expires_in_days: int | None,
    client: ClientInfo,
) -> IssuedApiKey:
    """Creates a key for `owner`; the caller shows `key` once and forgets it."""
    prefix = f"{KEY_SCHEME}_{secrets.token_hex(PREFIX_ID_BYTES)}"
    key = f"{prefix}_{new_random_token()}"
    now = utcnow()
    record = ApiKey(
        user_id=owner.id,
        name=name,
        prefix=prefix,
        key_hash=sha256_hex(key),
        created_at=now,
        expires_at=now + timedelta(days=expires_in_days) if expires_in_days else None,
    )
    with writes(db):
        db.add(record)
        db.flush()
        _audit(db, record, "api_key.created", client, expires_at=_iso(record.expires_at))
    return IssuedApiKey(record=record, key=key)


def list_api_keys(db: Session, owner_id: int) -> list[ApiKey]:
    return list(
        db.scalars(
            select(ApiKey)
            .where(ApiKey.user_id == owner_id)
            .order_by(ApiKey.created_at.desc(), ApiKey.id.desc())
        )
    )


def revoke_api_key(db: Session, owner: User, key_id: int, *, client: ClientInfo) -> None:
    """Revokes one of the owner's keys (idempotent); another user's key is a 404."""
    record = db.get(ApiKey, key_id)
    if record is None or record.user_id != owner.id:
        raise NotFound("API key not found")
    with writes(db):
        if record.revoked_at is None:
            record.revoked_at = utcnow()
            _audit(db, record, "api_key.revoked", client)


def revoke_user_api_keys(db: Session, user_id: int) -> int:
    """Revokes every live key of a user (deactivation, deletion), in the caller's unit of
    work."""
    return db.execute(
        update(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount


def authenticate_api_key(db: Session, raw_key: str) -> User:
    """The active owner of a valid key, after stamping `last_used_at`; else NotAuthenticated."""
    match = _KEY_PATTERN.match(raw_key.strip())
    record = db.scalar(select(ApiKey).where(ApiKey.prefix == match.group(1))) if match else None
    stored_hash = record.key_hash if record is not None else _DUMMY_HASH
    hash_matches = secrets_equal(sha256_hex(raw_key.strip()), stored_hash)
    now = utcnow()
    if (
        record is None
        or not hash_matches
        or record.revoked_at is not None
        or (record.expires_at is not None and record.expires_at <= now)
    ):
        raise NotAuthenticated(INVALID_API_KEY)
    owner = db.get(User, record.user_id)
    if owner is None or not owner.is_active or owner.deleted_at is not None:
        raise NotAuthenticated(INVALID_API_KEY)
    with writes(db):
        db.execute(
            update(ApiKey)
            .where(ApiKey.id == record.id)
            .values(last_used_at=now)
            .execution_options(synchronize_session=False)
        )
    return owner
