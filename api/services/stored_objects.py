"""Stored objects follow the transaction that records them.

An object whose row is being added is deleted again if that transaction does not commit; an
object whose row is being deleted is removed only once that deletion has committed. So a
rollback keeps rows and objects matched, and a crash in between can leave only an orphan
object (which the storage sweep removes), never a row without its object.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from api.storage import Storage

log = logging.getLogger("pixelgate.storage")

_LISTENING = "pixelgate.stored_objects.listening"
_DELETE_AFTER_COMMIT = "pixelgate.stored_objects.delete_after_commit"
_DELETE_UNLESS_COMMITTED = "pixelgate.stored_objects.delete_unless_committed"

Pending = list[tuple[Storage, str]]


def delete_after_commit(db: Session, storage: Storage, keys: Iterable[str]) -> None:
    """Removes these objects once the session's transaction commits; not if it rolls back."""
    _pending(db, _DELETE_AFTER_COMMIT).extend((storage, key) for key in keys)


def delete_unless_committed(db: Session, storage: Storage, keys: Iterable[str]) -> None:
    """Removes these objects when the session's transaction ends without committing."""
    _pending(db, _DELETE_UNLESS_COMMITTED).extend((storage, key) for key in keys)


def _pending(db: Session, name: str) -> Pending:
    if not db.info.get(_LISTENING):
        db.info[_LISTENING] = True
        event.listen(db, "after_commit", _on_commit)
        event.listen(db, "after_transaction_end", _on_transaction_end)
    pending: Pending = db.info.setdefault(name, [])
    return pending


def _on_commit(session: Session) -> None:
    session.info[_DELETE_UNLESS_COMMITTED] = []  # their rows are committed: keep them
    _delete(session.info.pop(_DELETE_AFTER_COMMIT, []))


def _on_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended: after `after_commit`, or by rollback or close."""
    if transaction.parent is None:
        session.info[_DELETE_AFTER_COMMIT] = []  # not committed: their rows still exist
        _delete(session.info.pop(_DELETE_UNLESS_COMMITTED, []))


def _delete(objects: Pending) -> None:
    for storage, key in objects:
        try:
            storage.delete(key)
        except Exception:  # best effort, after the fact: the sweep catches what is left
            log.exception("could not remove %s (the next sweep will)", key)
