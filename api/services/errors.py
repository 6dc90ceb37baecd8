"""Domain errors raised by services; `api/errors.py` maps them to HTTP answers."""

from __future__ import annotations


class DomainError(Exception):
    """Base class: `message` is safe to show to the caller as written."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(DomainError):
    pass


class Forbidden(DomainError):
    pass


class Conflict(DomainError):
    pass


class NotAuthenticated(DomainError):
    """Missing, invalid, expired or revoked credentials."""


class InvalidCredentials(NotAuthenticated):
    def __init__(self) -> None:
        super().__init__("Invalid username or password")


class AccountInactive(DomainError):
    def __init__(self) -> None:
        super().__init__("This account is deactivated")


class EmailNotVerified(DomainError):
    """REQUIRE_VERIFIED_EMAIL refuses an account whose address is not verified: 403."""

    def __init__(self) -> None:
        super().__init__("Email address not verified")


class InvalidLink(DomainError):
    """A reset or verification link that is unknown, used, expired or superseded: 400."""


class WrongPassword(DomainError):
    """A password given to confirm an action (not a login) is wrong: 400."""


class WrongCode(DomainError):
    """A second-factor code given to confirm an action (not a login) is wrong: 400."""


class TooManyRequests(DomainError):
    """Rate limit or lockout; `retry_after` in whole seconds."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class ServiceBusy(DomainError):
    """Temporarily unable to take more work (e.g. the processing queue is full): 503."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)


class RuleViolation(DomainError):
    """A business rule rejected one input field; answered as FastAPI's own 422 shape."""

    def __init__(self, field: str, message: str, location: str = "body") -> None:
        super().__init__(message)
        self.field = field
        self.location = location


class PayloadTooLarge(DomainError):
    pass


class UnsupportedMediaType(DomainError):
    pass


class UnprocessableContent(DomainError):
    """The input is well-formed HTTP but its content is unusable (e.g. a corrupt image): 422."""
