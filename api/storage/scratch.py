"""Scratch files: local temporary files of uploads and jobs, in one directory per backend.

Each name carries the host and process that made it, so the files of a process that was killed
mid-job (a timed-out or crashed worker) can be removed by whoever replaces it, without touching
those of live processes, on this host or another one sharing the directory.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path


def _owner_tag(pid: int) -> str:
    return f"{socket.gethostname()}.{pid}"


class ScratchDir:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def new_path(self, purpose: str) -> Path:
        """A unique path in the directory; the caller creates (and removes) the file."""
        self.path.mkdir(parents=True, exist_ok=True)
        return self.path / f"{purpose}-{_owner_tag(os.getpid())}-{secrets.token_hex(8)}.part"

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

    def remove_of_process(self, pid: int) -> int:
        """Deletes the files that process `pid` of this host made (it is gone)."""
        if not self.path.is_dir():
            return 0
        tag = f"-{_owner_tag(pid)}-"
        removed = 0
        for path in self.path.glob(f"*{tag}*.part"):
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    def remove_of_dead_processes(self) -> int:
        """Deletes the files of this host's processes that are gone (killed mid-job)."""
        if not self.path.is_dir():
            return 0
        host = f"-{socket.gethostname()}."
        removed = 0
        for path in self.path.glob(f"*{host}*.part"):
            pid = path.name.split(host, 1)[1].split("-", 1)[0]
            if pid.isdigit() and not _process_alive(int(pid)):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: alive
        return True
    return True
