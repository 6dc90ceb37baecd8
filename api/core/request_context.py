"""Pure-ASGI middleware: request id, one access-log line per request, and a last-resort 500.

Written as raw ASGI (not BaseHTTPMiddleware) so streamed uploads and downloads pass through
untouched. It sits outside Starlette's exception handling, so the 500 it sends for an
unhandled error still carries X-Request-ID.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.core.client_info import client_ip
from api.core.config import Settings

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("pixelgate.access")
error_log = logging.getLogger("pixelgate.error")


def request_id_from(raw: str | None) -> str:
    """Echo a caller's id if it is safe to log and send back; otherwise make one."""
    if raw and _VALID_REQUEST_ID.match(raw):
        return raw
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        connection = HTTPConnection(scope)
        request_id = request_id_from(connection.headers.get(REQUEST_ID_HEADER))
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_request_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        except Exception:
            error_log.exception(
                "unhandled error method=%s path=%s request_id=%s",
                scope["method"],
                scope["path"],
                request_id,
            )
            if response_started:
                raise
            status_code = 500
            body = json.dumps({"detail": "Internal server error"}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (REQUEST_ID_HEADER.lower().encode(), request_id.encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        finally:
            duration_ms = (time.perf_counter() - started) * 1000
            level = (
                logging.WARNING if duration_ms >= self.settings.slow_request_ms else logging.INFO
            )
            # Path only: query strings, headers, cookies and bodies may carry secrets.
            access_log.log(
                level,
                "%s %s client=%s status=%s duration_ms=%.1f request_id=%s%s",
                scope["method"],
                scope["path"],
                client_ip(connection, self.settings),
                status_code,
                duration_ms,
                request_id,
                " slow" if level == logging.WARNING else "",
            )
