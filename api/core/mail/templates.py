"""The mails Pixelgate sends, each a plain-text and an HTML Jinja2 template.

Templates are rendered with StrictUndefined, so a missing value fails the send (and its
event is retried, then reported) instead of mailing a link-less or nameless text.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from functools import cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATE_DIR = Path(__file__).parent / "templates"


class MailTemplate(Enum):
    """name → subject. Every template says what to do if the person did not ask for it."""

    VERIFY_EMAIL = ("verify_email", "Confirm your email address for Pixelgate")
    PASSWORD_RESET = ("password_reset", "Reset your Pixelgate password")
    PASSWORD_CHANGED = ("password_changed", "Your Pixelgate password was changed")
    MFA_ENABLED = ("mfa_enabled", "Two-factor authentication is now on for your Pixelgate account")
    MFA_DISABLED = ("mfa_disabled", "Two-factor authentication was turned off on your account")
    MFA_RECOVERY_CODES_REGENERATED = (
        "mfa_recovery_codes_regenerated",
        "New two-factor recovery codes were made for your Pixelgate account",
    )
    MFA_RESET = (
        "mfa_reset",
        "An administrator removed two-factor authentication from your account",
    )

    def __init__(self, file_stem: str, subject: str) -> None:
        self.file_stem = file_stem
        self.subject = subject


@dataclass(frozen=True, slots=True)
class RenderedMail:
    subject: str
    text: str
    html: str


def duration(value: timedelta) -> str:
    """`timedelta(minutes=30)` → "30 minutes"; whole hours and days read as such."""
    minutes = round(value.total_seconds() / 60)
    for unit, size in (("day", 24 * 60), ("hour", 60), ("minute", 1)):
        if minutes >= size and minutes % size == 0:
            count = minutes // size
            return f"{count} {unit}{'' if count == 1 else 's'}"
    return f"{minutes} minutes"


@cache
def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATE_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    environment.filters["duration"] = duration
    return environment


def render(template: MailTemplate, context: dict[str, object]) -> RenderedMail:
    environment = _environment()
    values = {"subject": template.subject, **context}
    return RenderedMail(
        subject=template.subject,
        text=environment.get_template(f"{template.file_stem}.txt").render(values),
        html=environment.get_template(f"{template.file_stem}.html").render(values),
    )
