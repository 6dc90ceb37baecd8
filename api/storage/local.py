"""Image objects as files under STORAGE_DIR: server-made names, atomic writes, nothing else.

Filesystem only (no database), so worker processes use it too. A file is written under a
temporary name in `STORAGE_DIR/.tmp` (same filesystem) and renamed into place once complete:
readers never see half a file, and a crash leaves only a temporary file for the sweep.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from api.storage.base import KEY_PATTERN, ObjectStream, Storage, StoredObject, checked_key
from api.storage.scratch import ScratchDir

SCRATCH_DIR_NAME = ".tmp"


class LocalStorage(Storage):
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # On the same filesystem as `root`: a finished file is renamed into place.
        self.scratch_dir = self.root / SCRATCH_DIR_NAME
        self._scratch = ScratchDir(self.scratch_dir)

    def path_for(self, key: str) -> Path:
        """Where the object `key` lives (this backend only; services go through the interface)."""
        return self.root / checked_key(key)

    def _partial_path(self, key: str) -> Path:
        return self.scratch_dir / f"{checked_key(key)}.part"

    def put_file(self, path: Path, key: str) -> None:
        move_into_place(path, self.path_for(key))

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        partial = self._partial_path(key)
        self.scratch_dir.mkdir(parents=True, exist_ok=True)
        try:
            yield partial
            move_into_place(partial, self.path_for(key))
        finally:
            partial.unlink(missing_ok=True)

    def open(self, key: str) -> ObjectStream:
        file = self.path_for(key).open("rb")
        return ObjectStream(file, os.fstat(file.fileno()).st_size)

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        path = self.path_for(key)
        if not path.is_file():
            raise FileNotFoundError(key)
        yield path

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)
        self._partial_path(key).unlink(missing_ok=True)

    def stored_objects(self) -> Iterator[StoredObject]:
        if not self.root.is_dir():
            return
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and KEY_PATTERN.match(entry.name):
                    yield StoredObject(entry.name, entry.stat().st_mtime)

    def scratch_path(self, purpose: str) -> Path:
        return self._scratch.new_path(purpose)

    def remove_stale_scratch_files(self, older_than_s: float) -> int:
        return self._scratch.remove_stale(older_than_s)

    def remove_scratch_files_of(self, pid: int) -> int:
        return self._scratch.remove_of_process(pid)

    def remove_scratch_files_of_dead_processes(self) -> int:
        return self._scratch.remove_of_dead_processes()


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
