"""The image library: uploads judged by content, ownership, deletion, and the storage sweep.

Row and file stay consistent: a new file is complete (renamed into place) before its row is
committed, and removed again if the commit fails; a deleted row's file is removed only after
the deletion is committed (see `delete_files_after_commit`). A crash between the two steps can
leave only an orphan file, which the start-up sweep removes.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sqlalchemy import Select, delete, event, select, update
from sqlalchemy.orm import Session, SessionTransaction

from api.core.config import Settings
from api.core.db import end_read_transaction
from api.models import Image, User, utcnow
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams
from api.schemas.event import EventType
from api.services.errors import NotFound, RuleViolation, UnsupportedMediaType
from api.services.events import record_event
from api.services.ownership import get_owned, get_owned_many
from api.services.processing.imaging import (
    EXTENSIONS,
    MEDIA_TYPES,
    SUPPORTED_FORMATS,
    displayed_size,
    make_thumbnail,
    open_image,
)
from api.services.storage import Storage

log = logging.getLogger("pixelgate.images")

UPLOAD_FIELD = "file"
MAX_FILENAME_LENGTH = 255
DEFAULT_FILENAME = "upload"
IMAGE_NOUN = "image"
# Files younger than this are left alone by the sweep: another server process sharing
# STORAGE_DIR may be between writing a file and committing its row.
SWEEP_GRACE_S = 3600
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
_PENDING_DELETES = "pixelgate.files_to_delete_after_commit"


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    width: int
    height: int


def storage_for(settings: Settings) -> Storage:
    return Storage(settings.storage_dir)


# --- upload -------------------------------------------------------------------------------


def clean_filename(raw: str | None) -> str:
    """The client's file name as display metadata only: no directories, no control
    characters, bounded length. It never names a stored file."""
    name = PurePosixPath((raw or "").replace("\\", "/")).name
    name = _CONTROL_CHARACTERS.sub("", name).strip()
    if name in ("", ".", ".."):
        return DEFAULT_FILENAME
    return name[-MAX_FILENAME_LENGTH:]


def _invalid(message: str) -> RuleViolation:
    return RuleViolation(UPLOAD_FIELD, message)


def inspect_image(path: Path, max_pixels: int) -> ImageInfo:
    """Judges a file by its content: a supported format (415 otherwise), not a decompression
    bomb, and completely decodable (422 saying truncated or corrupt otherwise)."""
    if path.stat().st_size == 0:
        raise _invalid("The file is empty")
    supported = ", ".join(SUPPORTED_FORMATS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_image(path) as image:
                # Pillow names a JPEG with an MPF block (phones' depth or multi-picture data)
                # "MPO"; it is a JPEG, and its first picture is the one shown.
                image_format = "JPEG" if image.format == "MPO" else (image.format or "")
                if image.width * image.height > max_pixels:
                    raise _bomb(image.width, image.height, max_pixels)
                image.verify()
            with open_image(path) as image:
                width, height = displayed_size(image)
                # JPEG decodes at 1/8 scale here: truncation still shows, for 1/64 of the memory.
                image.draft(image.mode, (image.width // 8 or 1, image.height // 8 or 1))
                image.load()
        except UnidentifiedImageError:
            raise UnsupportedMediaType(
                f"Not a supported image: the content is none of {supported}"
            ) from None
        except PILImage.DecompressionBombError:
            raise _invalid(
                f"The image has too many pixels (over {max_pixels}): a decompression bomb"
            ) from None
        except RuleViolation:
            raise
        except Exception as exc:
            raise _decode_error(exc) from None
    return ImageInfo(format=image_format, width=width, height=height)


def _bomb(width: int, height: int, max_pixels: int) -> RuleViolation:
    return _invalid(
        f"The image is {width}×{height} = {width * height} pixels, over the limit of "
        f"{max_pixels}: refused as a possible decompression bomb"
    )


def _decode_error(exc: Exception) -> RuleViolation:
    if "truncated" in str(exc).lower():
        return _invalid("The image file is truncated: its data ends early")
    return _invalid("The image file is corrupt: its data cannot be decoded")


def store_upload(
    db: Session, settings: Settings, owner: User, temp_path: Path, filename: str | None
) -> Image:
    """Checks a received file and makes it an image of `owner`; the temporary file is moved
    into storage, or left for the caller to remove when anything is refused."""
    info = inspect_image(temp_path, settings.max_image_pixels)
    storage = storage_for(settings)
    key = storage.new_key(EXTENSIONS[info.format])
    size_bytes = temp_path.stat().st_size
    end_read_transaction(db)
    storage.promote(temp_path, key)
    try:
        image = Image(
            owner_id=owner.id,
            filename=clean_filename(filename),
            storage_key=key,
            format=info.format,
            media_type=MEDIA_TYPES[info.format],
            width=info.width,
            height=info.height,
            size_bytes=size_bytes,
        )
        db.add(image)
        db.flush()
        record_event(db, EventType.IMAGE_UPLOADED, {"image_id": image.id, "user_id": owner.id})
        db.commit()
    except BaseException:
        db.rollback()
        storage.delete(key)
        raise
    log.info("image %s uploaded by user %s (%s, %s bytes)", image.id, owner.id, key, size_bytes)
    return image


# --- reading ------------------------------------------------------------------------------


def get_owned_image(db: Session, user: User, image_id: int) -> Image:
    return get_owned(db, Image, user, image_id, IMAGE_NOUN)


def get_owned_images(db: Session, user: User, image_ids: Sequence[int]) -> list[Image]:
    return get_owned_many(db, Image, user, image_ids, IMAGE_NOUN)


def images_page(db: Session, user: User, page: PageParams) -> tuple[list[Image], int]:
    statement: Select[tuple[Image]] = (
        select(Image)
        .where(Image.owner_id == user.id)
        .order_by(Image.created_at.desc(), Image.id.desc())
    )
    return fetch_page(db, statement, page)


def image_path(settings: Settings, image: Image) -> Path:
    """The stored file of an image; 404 if the file has gone missing."""
    path = storage_for(settings).path_for(image.storage_key)
    if image.file_missing_at is not None or not path.is_file():
        raise NotFound("The image file is missing from storage")
    return path


def thumbnail(settings: Settings, image: Image, size: int) -> tuple[bytes, str]:
    return make_thumbnail(image_path(settings, image), size)


# --- deletion -----------------------------------------------------------------------------


def delete_files_after_commit(db: Session, storage: Storage, keys: list[str]) -> None:
    """Removes these files once the session's transaction commits; not if it rolls back.

    So a deletion that is rolled back keeps its files, and one that is committed loses them;
    a crash in between leaves orphan files for the start-up sweep, never rows without files.
    """
    pending: list[tuple[Storage, str]] | None = db.info.get(_PENDING_DELETES)
    if pending is None:
        pending = db.info[_PENDING_DELETES] = []
        event.listen(db, "after_commit", _remove_pending_files)
        event.listen(db, "after_transaction_end", _forget_pending_files)
    pending.extend((storage, key) for key in keys)


def _remove_pending_files(session: Session) -> None:
    files: list[tuple[Storage, str]] = session.info.get(_PENDING_DELETES, [])
    session.info[_PENDING_DELETES] = []
    for storage, key in files:
        try:
            storage.delete(key)
        except OSError:
            log.exception("could not remove %s (the next sweep will)", key)


def _forget_pending_files(session: Session, transaction: SessionTransaction) -> None:
    """The outermost transaction ended (after `after_commit`, or by rollback or close)."""
    if transaction.parent is None:
        session.info[_PENDING_DELETES] = []


def delete_image(db: Session, settings: Settings, user: User, image_id: int) -> None:
    image = get_owned_image(db, user, image_id)
    end_read_transaction(db)
    delete_files_after_commit(db, storage_for(settings), [image.storage_key])
    db.execute(delete(Image).where(Image.id == image.id))
    record_event(db, EventType.IMAGE_DELETED, {"image_id": image.id, "user_id": user.id})
    db.commit()


def delete_user_images(db: Session, user_id: int) -> list[str]:
    """Deletes every image row of a user; returns the storage keys of their files.

    Commits nothing: it is one step of the caller's transaction (the account deletion), whose
    `user.deleted` event carries the keys to the handler that removes the files once the
    deletion has committed (`remove_files_of_deleted_images`). Jobs keep their history (their
    image ids become null).
    """
    keys = list(db.scalars(select(Image.storage_key).where(Image.owner_id == user_id)))
    if keys:
        db.execute(delete(Image).where(Image.owner_id == user_id))
        db.flush()
    return keys


def remove_files_of_deleted_images(db: Session, storage: Storage, keys: Sequence[str]) -> int:
    """Removes the files of these keys that no image row names (any longer); returns how many
    were asked for and unreferenced. A file already gone is fine: this may run twice."""
    referenced = set(db.scalars(select(Image.storage_key).where(Image.storage_key.in_(keys))))
    unreferenced = [key for key in keys if key not in referenced]
    storage.delete_many(unreferenced)
    return len(unreferenced)


# --- start-up sweep -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepReport:
    orphan_files_removed: int
    temp_files_removed: int
    rows_marked_missing: int
    rows_found_again: int


def sweep_storage(db: Session, settings: Settings, grace_s: float = SWEEP_GRACE_S) -> SweepReport:
    """Removes files with no row and stale temporary files; marks rows whose file is gone
    (and unmarks those whose file is back). Files younger than `grace_s` are left alone."""
    storage = storage_for(settings)
    storage.ensure_dirs()
    temp_removed = storage.remove_stale_temp_files(grace_s)

    cutoff = time.time() - grace_s
    orphans_removed = 0
    known_keys = set(db.scalars(select(Image.storage_key)))
    for stored in storage.stored_files():
        if stored.key not in known_keys and stored.modified_at < cutoff:
            stored.path.unlink(missing_ok=True)
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
    end_read_transaction(db)
    now = utcnow()
    for chunk in _chunks(missing_ids):
        db.execute(update(Image).where(Image.id.in_(chunk)).values(file_missing_at=now))
    for chunk in _chunks(found_ids):
        db.execute(update(Image).where(Image.id.in_(chunk)).values(file_missing_at=None))
    db.commit()
    report = SweepReport(orphans_removed, temp_removed, len(missing_ids), len(found_ids))
    if any((orphans_removed, temp_removed, missing_ids, found_ids)):
        log.warning("storage sweep: %s", report)
    return report


def _chunks(ids: list[int], size: int = 500) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]
