"""Pure-ASGI middleware: request id, the request's log context, its metrics, one access-log
line per request, and a last-resort 500.

Written as raw ASGI (not BaseHTTPMiddleware) so streamed uploads and downloads pass through
untouched, and so that it costs a few microseconds. It sits outside Starlette's exception
handling, so the 500 it sends for an unhandled error still carries X-Request-ID. The route
template for logs and metrics is read from `scope["route"]`, which routing leaves there.
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
from api.core.log_context import LogContext, bind_log_context, reset_log_context
from api.core.metrics import UNMATCHED_ROUTE, observe_request

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

access_log = logging.getLogger("pixelgate.access")
error_log = logging.getLogger("pixelgate.error")


def request_id_from(raw: str | None) -> str:
    """Echo a caller's id if it is safe to log and send back; otherwise make one."""
    if raw and _VALID_REQUEST_ID.match(raw):
        return raw
    return uuid.uuid4().hex


def route_template(scope: Scope) -> str:
    """The matched route's path template (`/images/{image_id}`), never the raw path."""
    route = scope.get("route")
    return getattr(route, "path_format", None) or UNMATCHED_ROUTE


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
        context = LogContext(request_id=request_id)
        context_token = bind_log_context(context)
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
            duration_s = time.perf_counter() - started
            route = route_template(scope)
            observe_request(route, scope["method"], status_code, duration_s)
            self._log_access(connection, scope, route, status_code, duration_s, context)
            reset_log_context(context_token)

    def _log_access(
        self,
        connection: HTTPConnection,
        scope: Scope,
        route: str,
        status_code: int,
        duration_s: float,
        context: LogContext,
    ) -> None:
        duration_ms = duration_s * 1000
        slow = duration_ms >= self.settings.slow_request_ms
        level = logging.WARNING if slow else logging.INFO
        if not access_log.isEnabledFor(level):
            return
        client = client_ip(connection, self.settings)
        # Path only: query strings, headers, cookies and bodies may carry secrets.
        access_log.log(
            level,
            "%s %s route=%s client=%s status=%s duration_ms=%.1f request_id=%s user_id=%s%s",
            scope["method"],
            scope["path"],
            route,
            client,
            status_code,
            duration_ms,
            context.request_id,
            context.user_id if context.user_id is not None else "-",
            " slow" if slow else "",
            extra={
                "method": scope["method"],
                "path": scope["path"],
                "route": route,
                "client": client,
                "status": status_code,
                "duration_ms": round(duration_ms, 1),
                "slow": slow,
            },
        )
