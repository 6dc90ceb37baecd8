"""Maps domain errors to HTTP answers: the one place that knows both."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException

from api.services import errors
from api.storage import StorageUnavailable

_STATUS: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.NotAuthenticated, 401),
    (errors.AccountInactive, 403),
    (errors.EmailNotVerified, 403),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.WrongPassword, 400),
    (errors.InvalidLink, 400),
    (errors.WrongCode, 400),
    (errors.PayloadTooLarge, 413),
    (errors.UnsupportedMediaType, 415),
    (errors.UnprocessableContent, 422),
    (errors.TooManyRequests, 429),
    (errors.ServiceBusy, 503),
)


def status_for(error: errors.DomainError) -> int:
    for error_type, status in _STATUS:
        if isinstance(error, error_type):
            return status
    return 400


async def domain_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.DomainError)
    if isinstance(exc, errors.RuleViolation):
        # Same shape as FastAPI's own request validation errors.
        return JSONResponse(
            status_code=422,
            content={
                "detail": [
                    {"type": "value_error", "loc": [exc.location, exc.field], "msg": exc.message}
                ]
            },
        )
    headers: dict[str, str] = {}
    if isinstance(exc, errors.NotAuthenticated):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, errors.TooManyRequests | errors.ServiceBusy):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, errors.PayloadTooLarge):
        # The rest of the body was never read: close rather than have the server drain it.
        headers["Connection"] = "close"
    return JSONResponse(
        status_code=status_for(exc), content={"detail": exc.message}, headers=headers
    )


SQLITE_BUSY_MESSAGE = "database is locked"


async def database_busy_handler(_request: Request, exc: Exception) -> JSONResponse:
    """SQLite refuses a write that would need a newer snapshot at once, whatever the busy
    timeout: answer that as a retryable 503, not a 500. Any other database error stays a 500."""
    assert isinstance(exc, OperationalError)
    if SQLITE_BUSY_MESSAGE not in str(exc.orig):
        raise exc
    return JSONResponse(
        status_code=503,
        content={"detail": "The database is busy; try again in a moment"},
        headers={"Retry-After": "1"},
    )


async def storage_unavailable_handler(_request: Request, exc: Exception) -> JSONResponse:
    """The image store is down or refuses us: retryable, and nothing was recorded."""
    assert isinstance(exc, StorageUnavailable)
    return JSONResponse(
        status_code=503,
        content={"detail": f"{exc.message}; try again shortly"},
        headers={"Retry-After": str(exc.retry_after)},
    )


async def body_parsing_error_handler(request: Request, exc: Exception) -> Response:
    """A body FastAPI cannot even parse (not UTF-8, a broken form) is a 422 in FastAPI's own
    shape, like a body that is not JSON: one answer for every unreadable body, and the one
    every route with a body declares. FastAPI raises these as a bare 400; our code never
    raises HTTPException, so any other status is passed on as it is."""
    assert isinstance(exc, HTTPException)
    if exc.status_code != 400:
        return await http_exception_handler(request, exc)
    if isinstance(exc.__cause__, UnicodeDecodeError):
        problem = {"type": "json_invalid", "msg": "JSON decode error: the body is not UTF-8"}
    else:
        problem = {"type": "value_error", "msg": "The body could not be parsed"}
    return JSONResponse(status_code=422, content={"detail": [{"loc": ["body"], **problem}]})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, domain_error_handler)
    app.add_exception_handler(StorageUnavailable, storage_unavailable_handler)
    app.add_exception_handler(OperationalError, database_busy_handler)
    app.add_exception_handler(HTTPException, body_parsing_error_handler)
