"""Where composed mails go: an SMTP server, `.eml` files, or nowhere."""

from __future__ import annotations

import contextlib
import logging
import os
import smtplib
import ssl
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from api.core.config import Settings

log = logging.getLogger("pixelgate.mail")


class MailDeliveryError(Exception):
    """The mail was not handed over; the sender (an event handler) retries it later.

    The message names the server and what it answered, never the mail's content.
    """


class MailTransport(Protocol):
    def deliver(self, message: EmailMessage) -> None:
        """Hands the message over for good, or raises MailDeliveryError."""


class SmtpTransport:
    """stdlib smtplib: one connection per mail (mails are rare), STARTTLS before any login.

    With `starttls` a server that does not offer STARTTLS is a delivery error: the mail and
    the credentials never go out in clear text.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None,
        password: str | None,
        starttls: bool,
        timeout_s: float,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._username = username
        self._password = password
        self._starttls = starttls
        self._timeout_s = timeout_s
        # The system's CA store and hostname checks unless a caller trusts its own CA.
        self._tls_context = tls_context or ssl.create_default_context()

    def deliver(self, message: EmailMessage) -> None:
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self._timeout_s) as smtp:
                smtp.ehlo()
                if self._starttls:
                    smtp.starttls(context=self._tls_context)
                    smtp.ehlo()
                if self._username:
                    smtp.login(self._username, self._password or "")
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise MailDeliveryError(
                f"SMTP server {self.host}:{self.port} answered {exc.smtp_code}: "
                f"{_decoded(exc.smtp_error)}"
            ) from exc
        except (smtplib.SMTPException, OSError) as exc:
            raise MailDeliveryError(
                f"SMTP delivery to {self.host}:{self.port} failed: {type(exc).__name__}: {exc}"
            ) from exc


def _decoded(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply


class FileTransport:
    """Each mail becomes one `.eml` file under `directory`, for development: open it in a
    mail program or read it as text. Written under a temporary name and renamed, so a reader
    never sees half a mail."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def deliver(self, message: EmailMessage) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"{stamp}-{uuid.uuid4().hex[:12]}.eml"
        partial = path.with_suffix(".eml.partial")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            partial.write_bytes(message.as_bytes())
            os.replace(partial, path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                partial.unlink(missing_ok=True)
            raise MailDeliveryError(
                f"could not write a mail file under {self.directory}: {type(exc).__name__}"
            ) from exc
        log.info("mail written to %s", path.name)


class NullTransport:
    """MAIL_BACKEND=none: mails are composed (so template errors still show) and dropped."""

    def deliver(self, message: EmailMessage) -> None:
        log.debug("mail dropped (MAIL_BACKEND=none)")


def build_transport(settings: Settings) -> MailTransport:
    if settings.mail_backend == "smtp":
        assert settings.smtp_host is not None  # Settings refuse smtp without a host
        return SmtpTransport(
            settings.smtp_host,
            settings.smtp_port,
            username=settings.smtp_username,
            password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
            starttls=settings.smtp_starttls,
            timeout_s=settings.smtp_timeout_s,
        )
    if settings.mail_backend == "file":
        return FileTransport(settings.mail_outbox_dir)
    return NullTransport()
