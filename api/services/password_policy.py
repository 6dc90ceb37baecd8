"""The password policy (configurable through settings): one rule set for sign-up, change and
reset, and the same rules published for forms to show (`GET /auth/password-policy`)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from api.core.config import Settings
from api.models import User
from api.services.errors import RuleViolation

COMMON_PASSWORD = "Password is too common: it is on a list of frequently used passwords"


@cache
def common_passwords() -> frozenset[str]:
    """zxcvbn's offline list of the 30,000 most used passwords, casefolded; loaded on the
    first check, once per process."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(password.casefold() for password in FREQUENCY_LISTS["passwords"])


@dataclass(frozen=True, slots=True)
class PasswordPolicy:
    min_length: int
    max_bytes: int
    require_upper: bool
    require_lower: bool
    require_digit: bool
    require_symbol: bool
    block_common: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> PasswordPolicy:
        return cls(
            min_length=settings.password_min_length,
            max_bytes=settings.password_max_bytes,
            require_upper=settings.password_require_upper,
            require_lower=settings.password_require_lower,
            require_digit=settings.password_require_digit,
            require_symbol=settings.password_require_symbol,
            block_common=settings.password_block_common,
        )

    def required_kinds(self) -> list[str]:
        return [
            what
            for required, what in (
                (self.require_upper, "uppercase letter"),
                (self.require_lower, "lowercase letter"),
                (self.require_digit, "digit"),
                (self.require_symbol, "symbol"),
            )
            if required
        ]

    @property
    def rules(self) -> list[str]:
        """The rules in words, as a form shows them."""
        rules = [f"{self.min_length} to {self.max_bytes} bytes long (UTF-8)"]
        rules += [f"at least one {what}" for what in self.required_kinds()]
        rules.append("not the same as the username or email")
        if self.block_common:
            rules.append("not a commonly used password")
        return rules


def check_password(
    password: str, *, username: str, email: str, settings: Settings, field: str = "password"
) -> None:
    """Raises RuleViolation naming the first rule the password breaks."""
    policy = PasswordPolicy.from_settings(settings)
    size = len(password.encode())
    if len(password) < policy.min_length:
        raise RuleViolation(field, f"Password must be at least {policy.min_length} characters long")
    if size > policy.max_bytes:
        raise RuleViolation(
            field,
            f"Password must be at most {policy.max_bytes} bytes in UTF-8 "
            f"(this one is {size}); longer passwords are not silently truncated",
        )
    if "\x00" in password:
        # bcrypt cannot hash a NUL byte (and PostgreSQL cannot store one).
        raise RuleViolation(field, "Password must not contain NUL characters")
    present = {
        "uppercase letter": any(c.isupper() for c in password),
        "lowercase letter": any(c.islower() for c in password),
        "digit": any(c.isdigit() for c in password),
        "symbol": any(not c.isalnum() and not c.isspace() for c in password),
    }
    for what in policy.required_kinds():
        if not present[what]:
            raise RuleViolation(field, f"Password must contain at least one {what}")
    lowered = password.casefold()
    if lowered in (username.casefold(), email.casefold()):
        raise RuleViolation(field, "Password must not be the same as the username or email")
    if policy.block_common and lowered in common_passwords():
        raise RuleViolation(field, COMMON_PASSWORD)


def check_new_password(password: str, user: User, settings: Settings) -> None:
    """A password change or reset: the rules against the account, on field `new_password`."""
    check_password(
        password, username=user.username, email=user.email, settings=settings, field="new_password"
    )
