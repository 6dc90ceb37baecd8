"""The image library: uploads judged by content, rows for stored objects, ownership, deletion.

Row and object stay consistent (see `api/services/stored_objects.py`): an object is complete in
storage before its row is committed, and deleted again if that commit does not happen; a deleted
row's object is removed only after the deletion is committed.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image as PILImage
from PIL import UnidentifiedImageError
from sqlalchemy import Select, delete, select
from sqlalchemy.orm import Session

from api.core.config import Settings
from api.core.db import writes
from api.models import Image, User
from api.processing.imaging import (
    EXTENSIONS,
    MEDIA_TYPES,
    SUPPORTED_FORMATS,
    displayed_size,
    make_thumbnail,
    open_image,
)
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams
from api.schemas.event import EventType
from api.services.errors import NotFound, RuleViolation, UnsupportedMediaType
from api.services.events import record_event
from api.services.ownership import get_owned, get_owned_many
from api.services.stored_objects import delete_after_commit, delete_unless_committed
from api.storage import ObjectStream, Storage, new_key

log = logging.getLogger("pixelgate.images")

UPLOAD_FIELD = "file"
MAX_FILENAME_LENGTH = 255
DEFAULT_FILENAME = "upload"
IMAGE_NOUN = "image"
FILE_MISSING = "The image file is missing from storage"
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class ImageInfo:
    format: str
    width: int
    height: int


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


def add_image(
    db: Session,
    storage: Storage,
    *,
    owner_id: int,
    key: str,
    filename: str,
    image_format: str,
    width: int,
    height: int,
    size_bytes: int,
    source_image_id: int | None = None,
    operations: list[dict[str, Any]] | None = None,
) -> Image:
    """Adds the row of the complete object `key` to the caller's transaction; the object is
    deleted again if that transaction does not commit. Uploads and processing results alike."""
    image = Image(
        owner_id=owner_id,
        filename=filename,
        storage_key=key,
        format=image_format,
        media_type=MEDIA_TYPES[image_format],
        width=width,
        height=height,
        size_bytes=size_bytes,
        source_image_id=source_image_id,
        operations=operations,
    )
    db.add(image)
    delete_unless_committed(db, storage, [key])
    db.flush()
    return image


def store_upload(
    db: Session,
    storage: Storage,
    settings: Settings,
    owner: User,
    temp_path: Path,
    filename: str | None,
) -> Image:
    """Checks a received file and makes it an image of `owner`; the temporary file is moved
    into storage, or left for the caller to remove when anything is refused."""
    info = inspect_image(temp_path, settings.max_image_pixels)
    key = new_key(EXTENSIONS[info.format])
    size_bytes = temp_path.stat().st_size
    with writes(db):
        storage.put_file(temp_path, key)
        image = add_image(
            db,
            storage,
            owner_id=owner.id,
            key=key,
            filename=clean_filename(filename),
            image_format=info.format,
            width=info.width,
            height=info.height,
            size_bytes=size_bytes,
        )
        record_event(db, EventType.IMAGE_UPLOADED, {"image_id": image.id, "user_id": owner.id})
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


def ensure_stored(storage: Storage, image: Image) -> None:
    """404 if the image's object has gone missing."""
    if image.file_missing_at is not None or not storage.exists(image.storage_key):
        raise NotFound(FILE_MISSING)


def get_image_with_file(db: Session, user: User, image_id: int) -> Image:
    """The caller's image, 404 if the storage sweep found its file gone: checked before any
    answer about its bytes (a 304 included)."""
    image = get_owned_image(db, user, image_id)
    if image.file_missing_at is not None:
        raise NotFound(FILE_MISSING)
    return image


def open_content(storage: Storage, image: Image) -> ObjectStream:
    """The stored bytes of an image from `get_image_with_file`, as uploaded or made; 404 if
    they went missing since."""
    try:
        return storage.open(image.storage_key)
    except FileNotFoundError:
        raise NotFound(FILE_MISSING) from None


def thumbnail(storage: Storage, image: Image, size: int) -> tuple[bytes, str]:
    """Of an image from `get_image_with_file`; 404 if its file went missing since."""
    try:
        with storage.local_file(image.storage_key) as path:
            return make_thumbnail(path, size)
    except FileNotFoundError:
        raise NotFound(FILE_MISSING) from None


# --- deletion -----------------------------------------------------------------------------


def delete_image(db: Session, storage: Storage, user: User, image_id: int) -> None:
    image = get_owned_image(db, user, image_id)
    with writes(db):
        delete_after_commit(db, storage, [image.storage_key])
        db.execute(delete(Image).where(Image.id == image.id))
        record_event(db, EventType.IMAGE_DELETED, {"image_id": image.id, "user_id": user.id})


def delete_user_images(db: Session, user_id: int) -> list[str]:
    """Deletes every image row of a user; returns the storage keys of their objects.

    One step of the caller's unit of work (the account deletion), committing nothing; its
    `user.deleted` event carries the keys to the handler that removes the objects once the
    deletion has committed (`remove_objects_of_deleted_images`). Jobs keep their history
    (their image ids become null).
    """
    keys = list(db.scalars(select(Image.storage_key).where(Image.owner_id == user_id)))
    if keys:
        db.execute(delete(Image).where(Image.owner_id == user_id))
        db.flush()
    return keys


def remove_objects_of_deleted_images(db: Session, storage: Storage, keys: Sequence[str]) -> int:
    """Removes the objects of these keys that no image row names (any longer); returns how
    many that was. An object already gone is fine: this may run twice for one deletion."""
    referenced = set(db.scalars(select(Image.storage_key).where(Image.storage_key.in_(keys))))
    unreferenced = [key for key in keys if key not in referenced]
    for key in unreferenced:
        storage.delete(key)
    return len(unreferenced)
