"""Maps domain errors to HTTP answers: the one place that knows both."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import OperationalError

from api.services import errors

_STATUS: tuple[tuple[type[errors.DomainError], int], ...] = (
    (errors.NotAuthenticated, 401),
    (errors.AccountInactive, 403),
    (errors.Forbidden, 403),
    (errors.NotFound, 404),
    (errors.Conflict, 409),
    (errors.WrongPassword, 400),
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


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(errors.DomainError, domain_error_handler)
    app.add_exception_handler(OperationalError, database_busy_handler)
