"""The storage sweep (at start-up, then every STORAGE_SWEEP_INTERVAL_S): objects no row names
and stale scratch files older than STORAGE_ORPHAN_GRACE_S are deleted, rows whose object is
gone are marked (and unmarked when it is back)."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.core.config import Settings
from api.core.db import Database, writes
from api.models import Image, utcnow
from api.storage import Storage

log = logging.getLogger("pixelgate.images")

# Objects younger than this are left alone: another server process sharing the storage may
# be between writing an object and committing its row (STORAGE_ORPHAN_GRACE_S's default).
SWEEP_GRACE_S = 3600


@dataclass(frozen=True, slots=True)
class SweepReport:
    orphan_files_removed: int
    temp_files_removed: int
    rows_marked_missing: int
    rows_found_again: int


def sweep_storage(db: Session, storage: Storage, grace_s: float = SWEEP_GRACE_S) -> SweepReport:
    """Removes objects with no row and stale scratch files; marks rows whose object is gone
    (and unmarks those whose object is back). Objects younger than `grace_s` are left alone."""
    temp_removed = storage.remove_stale_scratch_files(grace_s)

    cutoff = time.time() - grace_s
    orphans_removed = 0
    known_keys = set(db.scalars(select(Image.storage_key)))
    for stored in storage.stored_objects():
        if stored.key not in known_keys and stored.modified_at < cutoff:
            storage.delete(stored.key)
            orphans_removed += 1

    missing_ids: list[int] = []
    found_ids: list[int] = []
    for image_id, key, missing_at in db.execute(
        select(Image.id, Image.storage_key, Image.file_missing_at)
    ):
        exists = storage.exists(key)
        if not exists and missing_at is None:
            missing_ids.append(image_id)
        elif exists and missing_at is not None:
            found_ids.append(image_id)
    now = utcnow()
    with writes(db):
        for chunk in _chunks(missing_ids):
            db.execute(update(Image).where(Image.id.in_(chunk)).values(file_missing_at=now))
        for chunk in _chunks(found_ids):
            db.execute(update(Image).where(Image.id.in_(chunk)).values(file_missing_at=None))
    report = SweepReport(orphans_removed, temp_removed, len(missing_ids), len(found_ids))
    if any((orphans_removed, temp_removed, missing_ids, found_ids)):
        log.warning("storage sweep: %s", report)
    return report


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


async def sweep_storage_forever(database: Database, storage: Storage, settings: Settings) -> None:
    """Sweeps every STORAGE_SWEEP_INTERVAL_S (the first sweep ran at start-up)."""
    while True:
        await asyncio.sleep(settings.storage_sweep_interval_s)
        try:
            await run_in_threadpool(_sweep_once, database, storage, settings)
        except Exception:
            log.warning("storage sweep failed; the next one retries", exc_info=True)


def _sweep_once(database: Database, storage: Storage, settings: Settings) -> None:
    with database.session() as db:
        sweep_storage(db, storage, settings.storage_orphan_grace_s)
