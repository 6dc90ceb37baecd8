"""The storage interface: image objects by key. Services and workers see keys, streams and
local files, never where or how a backend keeps the bytes.

Keys are made here only (32 random hex characters and a known extension) and every backend
refuses anything else, so no key read back from the database can point outside the store.
"""

from __future__ import annotations

import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

KEY_PATTERN = re.compile(r"^[0-9a-f]{32}\.(jpg|png|webp|gif|bmp|tiff)$")
STREAM_CHUNK_BYTES = 64 * 1024


class InvalidStorageKey(ValueError):
    pass


class StorageUnavailable(Exception):
    """The store cannot be reached (or refuses us) right now: worth retrying later."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


def new_key(extension: str) -> str:
    """A fresh, unguessable object key with the given extension (without dot)."""
    key = f"{secrets.token_hex(16)}.{extension}"
    if not KEY_PATTERN.match(key):
        raise InvalidStorageKey(f"unsupported extension {extension!r}")
    return key


def checked_key(key: str) -> str:
    if not KEY_PATTERN.match(key):
        raise InvalidStorageKey("not a storage key")
    return key


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    modified_at: float  # POSIX seconds


@dataclass(slots=True)
class ObjectStream:
    """An object's bytes, to be read once from the start; `size` is known up front."""

    file: BinaryIO
    size: int

    def chunks(self) -> Iterator[bytes]:
        with self.file:
            while chunk := self.file.read(STREAM_CHUNK_BYTES):
                yield chunk

    def close(self) -> None:
        self.file.close()


class Storage(ABC):
    """Image objects by key. Writes are atomic: an object is either complete or absent.

    A missing object is a FileNotFoundError from `open` and `local_file`, whatever the backend.
    """

    @abstractmethod
    def put_file(self, path: Path, key: str) -> None:
        """Makes the complete local file `path` the object `key`; the local file is consumed."""

    @abstractmethod
    def writing(self, key: str) -> AbstractContextManager[Path]:
        """A local file to write the object's bytes into: it becomes the object when the block
        ends, and is removed if the block raises."""

    @abstractmethod
    def open(self, key: str) -> ObjectStream:
        """The object's bytes as a stream (never the whole object in memory)."""

    @abstractmethod
    def local_file(self, key: str) -> AbstractContextManager[Path]:
        """The object as a local file for the length of the block (for decoders that seek)."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def delete(self, key: str) -> None:
        """Removes the object, and what a writer killed while writing it left behind;
        a missing object is no error."""

    @abstractmethod
    def stored_objects(self) -> Iterator[StoredObject]:
        """Every stored object (scratch files excluded)."""

    @abstractmethod
    def scratch_path(self, purpose: str) -> Path:
        """A unique local path for a temporary file; the caller creates and removes it."""

    @abstractmethod
    def remove_stale_scratch_files(self, older_than_s: float) -> int:
        """Deletes scratch files left by crashed writers; returns how many."""

    @abstractmethod
    def remove_scratch_files_of(self, pid: int) -> int:
        """Deletes the scratch files a process of this host made, once it is gone (killed
        mid-job); returns how many."""

    @abstractmethod
    def remove_scratch_files_of_dead_processes(self) -> int:
        """Deletes the scratch files of this host's processes that are gone."""

    def warm_up(self) -> None:  # noqa: B027 (most backends have nothing to prepare)
        """Makes what the first call would otherwise make (a client, a connection pool)."""
