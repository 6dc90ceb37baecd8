"""Where image objects live, behind one interface (`Storage`); see `factory.py` for the choice."""

from __future__ import annotations

from api.storage.base import (
    InvalidStorageKey,
    ObjectStream,
    Storage,
    StorageUnavailable,
    StoredObject,
    new_key,
)
from api.storage.local import LocalStorage

__all__ = [
    "InvalidStorageKey",
    "LocalStorage",
    "ObjectStream",
    "Storage",
    "StorageUnavailable",
    "StoredObject",
    "new_key",
]
