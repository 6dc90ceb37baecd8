"""What Linux /proc says about processes: whether one has exited, a supervisor's children, and
which uvicorn worker process served a keep-alive connection (so a test can prove that its
requests really spread over several workers)."""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PROC = Path("/proc")


def _stat_fields(stat: Path) -> list[str]:
    """The fields of a /proc/<pid>/stat after the command name: [state, ppid, ...].

    "pid (comm) state ppid ...": comm may hold spaces, so split after its last ")".
    """
    return stat.read_text().rsplit(")", 1)[1].split()


def process_is_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once `pid` has exited (a zombie not yet reaped counts as gone); waits at most
    `timeout` seconds for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = _stat_fields(PROC / str(pid) / "stat")[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


def child_pids(parent: int) -> set[int]:
    """Direct children of `parent` (uvicorn's supervisor -> its worker processes)."""
    children = set()
    for stat in PROC.glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat)
        except (OSError, IndexError):
            continue
        if int(fields[1]) == parent:
            children.add(int(stat.parent.name))
    return children


def _decode_ipv4(hex_address: str) -> tuple[str, int]:
    ip_hex, port_hex = hex_address.split(":")
    return socket.inet_ntoa(struct.pack("<I", int(ip_hex, 16))), int(port_hex, 16)


def _socket_inode(local: tuple[str, int], remote: tuple[str, int]) -> int | None:
    for line in (PROC / "net" / "tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if _decode_ipv4(fields[1]) == local and _decode_ipv4(fields[2]) == remote:
            return int(fields[9])
    return None


def _owner(inode: int, pids: set[int]) -> int | None:
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            descriptors = os.listdir(PROC / str(pid) / "fd")
        except OSError:
            continue
        for fd in descriptors:
            try:
                if os.readlink(PROC / str(pid) / "fd" / fd) == target:
                    return pid
            except OSError:
                continue
    return None


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    worker_pid: int | None

    def json(self) -> Any:
        return json.loads(self.body)


class WorkerConnection:
    """One keep-alive HTTP connection, optionally from a chosen loopback address. Given the
    server's supervisor pid, it names after each answer the worker process that holds the
    server side of the connection (that is, the one that served the request)."""

    def __init__(
        self, host: str, port: int, supervisor_pid: int | None = None, source_ip: str | None = None
    ) -> None:
        self.supervisor_pid = supervisor_pid
        self._server = (host, port)
        self._connection = http.client.HTTPConnection(
            host, port, timeout=30, source_address=(source_ip, 0) if source_ip else None
        )

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> Answer:
        headers = dict(headers or {})
        payload = None
        if body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self._connection.request(method, path, body=payload, headers=headers)
        response = self._connection.getresponse()
        data = response.read()
        return Answer(
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            data,
            self.serving_pid(),
        )

    def serving_pid(self) -> int | None:
        sock = self._connection.sock
        if sock is None or self.supervisor_pid is None:  # closed after answering, or not asked
            return None
        inode = _socket_inode(self._server, sock.getsockname())
        return _owner(inode, child_pids(self.supervisor_pid)) if inode else None

    def close(self) -> None:
        self._connection.close()
