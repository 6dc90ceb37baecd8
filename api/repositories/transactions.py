"""Transaction helpers that keep SQLite and PostgreSQL behaving alike."""

from __future__ import annotations

from sqlalchemy.orm import Session


def end_read_transaction(db: Session) -> None:
    """Ends the session's transaction before a write that follows reads.

    On SQLite a transaction that has read cannot start writing once another connection has
    committed since its first read (SQLITE_BUSY_SNAPSHOT, "database is locked", which the busy
    timeout does not wait out). Starting the write in a fresh transaction makes it wait its
    turn instead. Objects already loaded stay usable (sessions do not expire on commit).
    """
    db.commit()
