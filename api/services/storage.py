"""Image files under STORAGE_DIR: server-made names, atomic writes, nothing else.

Filesystem only (no database), so worker processes can use it too. A file is written to a
temporary name in `STORAGE_DIR/.tmp` (same filesystem) and renamed into place once complete:
readers never see half a file, and a crash leaves only a temporary file for the sweep.
"""

from __future__ import annotations

import os
import re
import secrets
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

TEMP_DIR_NAME = ".tmp"
# Keys are made here only: 32 hex characters and a known extension. Anything else is refused,
# so no key read back from the database can point outside STORAGE_DIR.
_KEY_PATTERN = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|gif|bmp|tiff)$")


class InvalidStorageKey(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class StoredFile:
    key: str
    path: Path
    modified_at: float


class Storage:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.temp_dir = self.root / TEMP_DIR_NAME

    def ensure_dirs(self) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def new_key(extension: str) -> str:
        """A fresh, unguessable file name with the given extension (without dot)."""
        key = f"{secrets.token_hex(16)}.{extension}"
        if not _KEY_PATTERN.match(key):
            raise InvalidStorageKey(f"unsupported extension {extension!r}")
        return key

    def path_for(self, key: str) -> Path:
        if not _KEY_PATTERN.match(key):
            raise InvalidStorageKey("not a storage key")
        return self.root / key

    def new_temp_path(self, purpose: str = "upload") -> Path:
        """A unique path in the temporary directory; the caller creates (and removes) the file."""
        self.ensure_dirs()
        return self.temp_dir / f"{purpose}-{secrets.token_hex(12)}.part"

    def promote(self, temp_path: Path, key: str) -> Path:
        """Moves a complete temporary file to its final name atomically; returns that path."""
        final = self.path_for(key)
        move_into_place(temp_path, final)
        return final

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def delete_many(self, keys: Iterable[str]) -> None:
        for key in keys:
            self.delete(key)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def stored_files(self) -> Iterator[StoredFile]:
        """Every stored image file (temporary files excluded)."""
        if not self.root.is_dir():
            return
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and _KEY_PATTERN.match(entry.name):
                    yield StoredFile(entry.name, Path(entry.path), entry.stat().st_mtime)

    def remove_stale_temp_files(self, older_than_s: float) -> int:
        """Deletes temporary files left by crashed writers; returns how many."""
        if not self.temp_dir.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        with os.scandir(self.temp_dir) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed


def move_into_place(temp_path: Path, final_path: Path) -> None:
    """Flushes a complete file to disk, then renames it over `final_path` (atomic on POSIX)."""
    _fsync_file(temp_path)
    os.replace(temp_path, final_path)
    _fsync_dir(final_path.parent)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    """Makes a rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
