"""The password policy (configurable through settings)."""

from __future__ import annotations

from api.core.config import Settings
from api.services.errors import RuleViolation


def check_password(
    password: str, *, username: str, email: str, settings: Settings, field: str = "password"
) -> None:
    """Raises RuleViolation naming the first rule the password breaks."""
    size = len(password.encode())
    if len(password) < settings.password_min_length:
        raise RuleViolation(
            field, f"Password must be at least {settings.password_min_length} characters long"
        )
    if size > settings.password_max_bytes:
        raise RuleViolation(
            field,
            f"Password must be at most {settings.password_max_bytes} bytes in UTF-8 "
            f"(this one is {size}); longer passwords are not silently truncated",
        )
    if "\x00" in password:
        # bcrypt cannot hash a NUL byte (and PostgreSQL cannot store one).
        raise RuleViolation(field, "Password must not contain NUL characters")
    checks = (
        (settings.password_require_upper, any(c.isupper() for c in password), "uppercase letter"),
        (settings.password_require_lower, any(c.islower() for c in password), "lowercase letter"),
        (settings.password_require_digit, any(c.isdigit() for c in password), "digit"),
        (
            settings.password_require_symbol,
            any(not c.isalnum() and not c.isspace() for c in password),
            "symbol",
        ),
    )
    for required, present, what in checks:
        if required and not present:
            raise RuleViolation(field, f"Password must contain at least one {what}")
    lowered = password.casefold()
    if lowered in (username.casefold(), email.casefold()):
        raise RuleViolation(field, "Password must not be the same as the username or email")
