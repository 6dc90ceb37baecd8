"""Scratch files: local temporary files of uploads and jobs, in one directory per backend."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path


class ScratchDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def new_path(self, purpose: str) -> Path:
        """A unique path in the directory; the caller creates (and removes) the file."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / f"{purpose}-{secrets.token_hex(12)}.part"

    def remove_stale(self, older_than_s: float) -> int:
        """Deletes files older than `older_than_s` (left by crashed writers); returns how many."""
        if not self.path.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        with os.scandir(self.path) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    Path(entry.path).unlink(missing_ok=True)
                    removed += 1
        return removed
