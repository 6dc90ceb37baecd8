from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from api.models.base import Base, utcnow

if TYPE_CHECKING:  # user.py imports this module
    from api.models.user import User


class TotpCredential(Base):
    """An account's TOTP secret, encrypted: pending from setup until a code enables it.

    `last_used_step` is the time step of the last accepted code; only later steps are
    accepted, so a code cannot be replayed (the enabling code counts as used).
    """

    __tablename__ = "mfa_totp"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    secret_ciphertext: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    enabled_at: Mapped[datetime | None]
    last_used_step: Mapped[int | None] = mapped_column(Integer)


class RecoveryCode(Base):
    """One single-use recovery code, kept only as the SHA-256 of its normalized form."""

    __tablename__ = "mfa_recovery_codes"
    __table_args__ = (Index("ix_mfa_recovery_codes_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class MfaChallenge(Base):
    """The second step of one login: issued for the right password, kept as the SHA-256 of
    the `mfa_token`, used once, refused for good after too many wrong codes."""

    __tablename__ = "mfa_challenges"
    __table_args__ = (Index("ix_mfa_challenges_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # What the login attempt typed (username or email): the verify attempts' login events
    # and lockout name the account the same way.
    username_attempted: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)

    user: Mapped[User] = relationship(lazy="joined")
