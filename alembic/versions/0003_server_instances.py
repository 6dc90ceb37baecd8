"""Server instances with heartbeats; jobs name the instance that runs them.

With several API processes on one database, a process that starts up must fail only the jobs
of processes that stopped or went silent, not those of its live siblings.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import sqlalchemy as sa
from alembic.operations import BatchOperations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


@contextmanager
def _altering_jobs() -> Iterator[BatchOperations]:
    """`jobs` in batch mode (SQLite copies the table). The copy reflects `users`, which `jobs`
    refers to, and SQLAlchemy warns that it cannot reflect its expression indexes; `users` is
    not altered, so that warning says nothing here."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", r"Skipped unsupported reflection of expression-based index", sa.exc.SAWarning
        )
        with op.batch_alter_table("jobs") as batch_op:
            yield batch_op


def upgrade() -> None:
    op.create_table(
        "server_instances",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stopped_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_server_instances")),
    )
    op.create_index(
        "ix_server_instances_heartbeat_at", "server_instances", ["heartbeat_at"], unique=False
    )
    with _altering_jobs() as batch_op:
        batch_op.add_column(sa.Column("server_id", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_jobs_server_id_server_instances"),
            "server_instances",
            ["server_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_index("ix_jobs_server_id", ["server_id"], unique=False)


def downgrade() -> None:
    with _altering_jobs() as batch_op:
        batch_op.drop_index("ix_jobs_server_id")
        batch_op.drop_constraint(
            batch_op.f("fk_jobs_server_id_server_instances"), type_="foreignkey"
        )
        batch_op.drop_column("server_id")
    op.drop_table("server_instances")
