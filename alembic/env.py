"""Runs migrations against DATABASE_URL (or `sqlalchemy.url` set by the caller)."""

from logging.config import fileConfig

from alembic import context
from api.core.config import load_settings
from api.core.db import create_db_engine
from api.models import Base

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    return config.get_main_option("sqlalchemy.url") or load_settings().database_url


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    # The app's own engine factory, so SQLite gets transactional DDL: a failed migration
    # rolls back whole instead of leaving half a schema behind.
    engine = create_db_engine(database_url())
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                render_as_batch=True,
                transaction_per_migration=False,
                # Alembic assumes SQLite cannot roll DDL back and commits after each migration;
                # with the engine above it can, so one failure leaves no half schema.
                transactional_ddl=True,
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
