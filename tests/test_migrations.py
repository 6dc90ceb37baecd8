"""Alembic: upgrade from empty and downgrade to base on each backend; schema equals the models;
a failing migration leaves nothing half-applied."""

from __future__ import annotations

import os
import textwrap
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Index, create_engine, inspect, text

from alembic import command
from api.models import Base
from tests.support.databases import (
    BACKENDS,
    alembic_config,
    fresh_postgres_database,
    migrate,
    table_names,
)
from tests.support.paths import REPO_ROOT


@pytest.fixture(params=BACKENDS)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A brand-new, empty database of each backend (never migrated)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    with fresh_postgres_database(request.getfixturevalue("postgres_server_url")) as url:
        yield url


def _current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        engine.dispose()


def _head(config: Config) -> str:
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def _index_names(connection: Connection) -> set[tuple[str, str]]:
    """(table, index) of every index made by CREATE INDEX, expression indexes included."""
    if connection.dialect.name == "sqlite":
        rows = connection.execute(
            text(
                "SELECT tbl_name, name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            )
        )
        return {(table, name) for table, name in rows}
    constraint_indexes = set(
        connection.scalars(text("SELECT conname FROM pg_constraint WHERE contype IN ('p', 'u')"))
    )
    rows = connection.execute(
        text("SELECT tablename, indexname FROM pg_indexes WHERE schemaname = current_schema()")
    )
    return {(table, name) for table, name in rows if name not in constraint_indexes}


def _made_on(index: Index, dialect: str) -> bool:
    """False for an index the models restrict to other dialects (`Index(...).ddl_if(...)`)."""
    condition = getattr(index, "_ddl_if", None)
    return condition is None or condition.dialect in (None, dialect)


def test_upgrade_from_empty_then_downgrade_to_base(empty_database_url: str) -> None:
    config = alembic_config(empty_database_url)
    command.upgrade(config, "head")
    model_tables = set(Base.metadata.tables)
    assert table_names(empty_database_url) == model_tables | {"alembic_version"}
    assert _current_revision(empty_database_url) == _head(config)

    command.downgrade(config, "base")
    assert table_names(empty_database_url) <= {"alembic_version"}
    assert _current_revision(empty_database_url) is None

    # The round trip is repeatable.
    command.upgrade(config, "head")
    assert table_names(empty_database_url) == model_tables | {"alembic_version"}


def test_migrated_schema_equals_the_models(empty_database_url: str) -> None:
    migrate(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            with warnings.catch_warnings():
                # SQLite: "can't reflect expression-based indexes" (checked by name below).
                warnings.filterwarnings("ignore", message=".*expression-based index")
                differences = compare_metadata(context, Base.metadata)
            assert differences == []
            # Alembic cannot reflect SQLite's expression indexes: check their names directly.
            dialect = connection.dialect.name
            expected = {
                (table.name, index.name)
                for table in Base.metadata.sorted_tables
                for index in table.indexes
                if _made_on(index, dialect)
            }
            assert _index_names(connection) == expected
    finally:
        engine.dispose()


BROKEN_MIGRATION = '''
"""A migration that fails halfway, for the test only."""
import sqlalchemy as sa
from alembic import op

revision = "test_broken"
down_revision = "{down_revision}"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("half_applied", sa.Column("id", sa.Integer(), primary_key=True))
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("half_applied_column", sa.Integer(), nullable=True))
    raise RuntimeError("this migration fails halfway")


def downgrade() -> None:
    pass
'''


def _config_with_broken_migration(url: str, tmp_path: Path) -> Config:
    config = alembic_config(url)
    versions = tmp_path / "broken_versions"
    versions.mkdir()
    (versions / "test_broken.py").write_text(
        textwrap.dedent(BROKEN_MIGRATION).format(down_revision=_head(config))
    )
    locations = os.pathsep.join([str(REPO_ROOT / "alembic" / "versions"), str(versions)])
    config.set_main_option("version_locations", locations)
    return config


def test_a_failing_migration_leaves_nothing_half_applied(
    empty_database_url: str, tmp_path: Path
) -> None:
    url = empty_database_url
    config = _config_with_broken_migration(url, tmp_path)

    # From empty: the whole upgrade is one transaction, so nothing at all remains.
    with pytest.raises(RuntimeError, match="fails halfway"):
        command.upgrade(config, "heads")
    assert table_names(url) <= {"alembic_version"}
    assert _current_revision(url) is None

    # From the last good revision: that revision stays, the broken one left no trace.
    migrate(url)
    good_head = _current_revision(url)
    with pytest.raises(RuntimeError, match="fails halfway"):
        command.upgrade(config, "heads")
    assert _current_revision(url) == good_head
    assert "half_applied" not in table_names(url)
    engine = create_engine(url)
    try:
        columns = {column["name"] for column in inspect(engine).get_columns("users")}
    finally:
        engine.dispose()
    assert "half_applied_column" not in columns
