from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, Index, String, func
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.models.base import Base, utcnow
from api.models.mfa import TotpCredential


class Role(StrEnum):
    MEMBER = "member"
    ADMIN = "admin"


class User(Base):
    __tablename__ = "users"
    __table_args__ = (
        Index("ix_users_role_active", "role", "is_active"),
        Index("ix_users_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(20))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default=Role.MEMBER.value)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    last_login_at: Mapped[datetime | None]
    # Links asked for before this moment are never mailed (see api/services/account_links.py).
    password_changed_at: Mapped[datetime | None]
    deleted_at: Mapped[datetime | None]

    # Joined: every request that loads its user knows `mfa_enabled` from the same query.
    totp: Mapped[TotpCredential | None] = relationship(lazy="joined", passive_deletes=True)

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN.value

    @property
    def mfa_enabled(self) -> bool:
        return self.totp is not None and self.totp.enabled_at is not None


# Case-insensitive uniqueness; lookups compare lower() too, so they use these indexes.
Index("uq_users_username_lower", func.lower(User.username), unique=True)
Index("uq_users_email_lower", func.lower(User.email), unique=True)

# Admin search (`GET /users?q=`, LIKE '%...%' on lower()): trigram GIN indexes, PostgreSQL
# only (migration 0002; SQLite has no such index type).
for _column in (User.username, User.email, User.name):
    Index(
        f"ix_users_{_column.key}_trgm",
        func.lower(_column).label(f"{_column.key}_lower"),
        postgresql_using="gin",
        postgresql_ops={f"{_column.key}_lower": "gin_trgm_ops"},
    ).ddl_if(dialect="postgresql")
