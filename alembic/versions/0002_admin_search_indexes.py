"""Indexes for administration: user search (PostgreSQL trigrams) and audit-log filters.

`GET /users?q=` matches any part of lower(username/email/name); on PostgreSQL the pg_trgm GIN
indexes serve those LIKE '%...%' queries. SQLite has no such index type and scans (fine for
the small, single-host databases it is used for). The extension is left installed on
downgrade: other objects may use it, and it is harmless.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_INDEXES = {
    "ix_users_username_trgm": "username",
    "ix_users_email_trgm": "email",
    "ix_users_name_trgm": "name",
}


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _pg_trgm_available() -> bool:
    return bool(
        op.get_bind().scalar(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
        )
    )


def upgrade() -> None:
    op.create_index(
        "ix_audit_log_action_created", "audit_log", ["action", "created_at"], unique=False
    )
    op.create_index("ix_audit_log_target", "audit_log", ["target_type", "target_id"], unique=False)
    if _is_postgresql() and _pg_trgm_available():
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for index, column in TRIGRAM_INDEXES.items():
            op.execute(f"CREATE INDEX {index} ON users USING gin (lower({column}) gin_trgm_ops)")


def downgrade() -> None:
    if _is_postgresql():
        for index in TRIGRAM_INDEXES:
            op.execute(f"DROP INDEX IF EXISTS {index}")
    op.drop_index("ix_audit_log_target", table_name="audit_log")
    op.drop_index("ix_audit_log_action_created", table_name="audit_log")
