"""The one place that picks the storage backend from settings (built once, in `create_app`)."""

from __future__ import annotations

from api.core.config import Settings
from api.storage.base import Storage
from api.storage.local import LocalStorage


def storage_from_settings(settings: Settings) -> Storage:
    return LocalStorage(settings.storage_dir)
