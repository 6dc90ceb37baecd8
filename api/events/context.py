"""What a handler gets besides its event: the collaborators built once by the entry point."""

from __future__ import annotations

from dataclasses import dataclass

from api.core.config import Settings
from api.core.db import Database
from api.core.mail import Mailer
from api.storage import Storage


@dataclass(frozen=True, slots=True)
class HandlerContext:
    settings: Settings
    database: Database
    storage: Storage
    mailer: Mailer
