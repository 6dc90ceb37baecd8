"""What a handler gets besides its event: the collaborators built once by the entry point."""

from __future__ import annotations

from dataclasses import dataclass

from api.core.config import Settings
from api.core.db import Database
from api.core.mail import Mailer, build_mailer
from api.storage import Storage
from api.storage.factory import storage_from_settings


@dataclass(frozen=True, slots=True)
class HandlerContext:
    settings: Settings
    database: Database
    storage: Storage
    mailer: Mailer

    @classmethod
    def from_settings(cls, settings: Settings, database: Database) -> HandlerContext:
        """For an entry point without an app (the consumer): the collaborators as configured."""
        return cls(settings, database, storage_from_settings(settings), build_mailer(settings))
