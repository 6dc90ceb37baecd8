"""Composes a mail from a template and hands it to the configured transport."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid, parseaddr
from typing import Protocol
from urllib.parse import urlencode

from api.core.config import Settings
from api.core.mail.templates import MailTemplate, render
from api.core.mail.transports import MailTransport, build_transport

log = logging.getLogger("pixelgate.mail")

# Dashboard pages the mails link to (the dashboard serves each of them while logged out).
RESET_PASSWORD_PAGE = "/reset-password"
VERIFY_EMAIL_PAGE = "/verify-email"
FORGOT_PASSWORD_PAGE = "/forgot-password"


class Recipient(Protocol):
    """Whom a mail is for; an account (`api.models.User`) is one."""

    @property
    def email(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def username(self) -> str: ...


class Mailer:
    """One per process. Links are built from PUBLIC_DASHBOARD_URL only, never from a request.

    Nothing it logs holds a link or a token: only the template and the Message-ID.
    """

    def __init__(self, transport: MailTransport, *, sender: str, dashboard_url: str) -> None:
        self.transport = transport
        self._sender = sender
        self._sender_domain = parseaddr(sender)[1].rpartition("@")[2] or "localhost"
        self.dashboard_url = dashboard_url.rstrip("/")

    def link(self, page: str, token: str) -> str:
        """A dashboard link carrying a one-time token, e.g. `link(RESET_PASSWORD_PAGE, raw)`."""
        return f"{self.dashboard_url}{page}?{urlencode({'token': token})}"

    def compose(
        self,
        template: MailTemplate,
        recipient: Recipient,
        *,
        occurred_at: datetime | None = None,
        **context: object,
    ) -> EmailMessage:
        """`occurred_at`: when what the mail reports happened (a retried mail goes out
        later); `context`: what the template needs beyond the recipient, e.g. `link` and
        `expires_in` (a timedelta)."""
        now = datetime.now(UTC)
        rendered = render(
            template,
            {
                "name": recipient.name,
                "username": recipient.username,
                "dashboard_url": self.dashboard_url,
                "forgot_password_url": self.dashboard_url + FORGOT_PASSWORD_PAGE,
                "sent_at": _as_text(now),
                "occurred_at": _as_text(occurred_at or now),
                **context,
            },
        )
        message = EmailMessage()
        message["Subject"] = rendered.subject
        message["From"] = self._sender
        message["To"] = formataddr((recipient.name, recipient.email))
        message["Date"] = format_datetime(now)
        message["Message-ID"] = make_msgid(domain=self._sender_domain)
        message["Auto-Submitted"] = "auto-generated"
        message.set_content(rendered.text, cte=_transfer_encoding(rendered.text))
        message.add_alternative(
            rendered.html, subtype="html", cte=_transfer_encoding(rendered.html)
        )
        return message

    def send(
        self,
        template: MailTemplate,
        recipient: Recipient,
        *,
        occurred_at: datetime | None = None,
        **context: object,
    ) -> None:
        """Composes and delivers one mail, e.g. `mailer.send(MailTemplate.MFA_ENABLED, user,
        occurred_at=event.occurred_at)`. Raises MailDeliveryError when it was not handed
        over, so the event handler that called it is retried."""
        message = self.compose(template, recipient, occurred_at=occurred_at, **context)
        self.transport.deliver(message)
        log.info("mail sent: %s %s", template.file_stem, message["Message-ID"])


def _as_text(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _transfer_encoding(body: str) -> str:
    """7bit keeps an ASCII mail (links included) readable as it is stored in an `.eml` file
    or a mail catcher; quoted-printable only where a name or text needs it."""
    return "7bit" if body.isascii() else "quoted-printable"


def build_mailer(settings: Settings) -> Mailer:
    return Mailer(
        build_transport(settings),
        sender=settings.mail_from,
        dashboard_url=settings.public_dashboard_url,
    )
