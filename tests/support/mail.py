"""Mail that tests read: a real SMTP server (aiosmtpd's Controller on 127.0.0.1 and a free
port) that keeps every mail it accepts and can refuse the next ones with an SMTP error, or the
`.eml` files of the file backend. `wait_for_mail` polls (bounded) until mails arrive, since the
app sends after its answer.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.servers import free_port

MAIL_DEADLINE_S = 30


class RecordingHandler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._messages: list[EmailMessage] = []
        self._refusals: list[str] = []
        self.refused = 0

    def refuse_next(self, times: int, reply: str = "451 4.3.0 Mailbox busy, try again") -> None:
        """The next `times` mails get `reply` (a 4xx or 5xx) instead of being accepted."""
        with self._lock:
            self._refusals.extend([reply] * times)

    async def handle_DATA(self, _server: SMTP, _session: Session, envelope: Envelope) -> str:
        with self._lock:
            if self._refusals:
                self.refused += 1
                return self._refusals.pop(0)
            raw = envelope.original_content or envelope.content
            assert isinstance(raw, bytes)
            message = BytesParser(policy=policy.default).parsebytes(raw)
            assert isinstance(message, EmailMessage)
            self._messages.append(message)
        return "250 2.0.0 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            return list(self._messages)


class Mailbox:
    """What arrived, oldest first, and ways to wait for more."""

    @property
    def messages(self) -> list[EmailMessage]:
        raise NotImplementedError

    def mails_to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def wait_for(
        self,
        predicate: Callable[[list[EmailMessage]], bool],
        timeout: float = MAIL_DEADLINE_S,
    ) -> list[EmailMessage]:
        """Polls until `predicate(messages)`; the deadline only keeps a broken build from
        hanging (not a timing assertion)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = self.messages
            if predicate(messages):
                return messages
            time.sleep(0.05)
        raise AssertionError(f"mails never arrived as expected; got {self.summary()}")

    def wait_for_mail(
        self, address: str, subject_part: str, count: int = 1, timeout: float = MAIL_DEADLINE_S
    ) -> EmailMessage:
        """The `count`-th mail to `address` whose subject contains `subject_part`."""

        def matching(messages: list[EmailMessage]) -> list[EmailMessage]:
            return [
                m
                for m in messages
                if address.lower() in str(m["To"]).lower() and subject_part in str(m["Subject"])
            ]

        self.wait_for(lambda messages: len(matching(messages)) >= count, timeout)
        return matching(self.messages)[count - 1]

    def summary(self) -> list[str]:
        return [f"{m['To']}: {m['Subject']}" for m in self.messages]


class SmtpServer(Mailbox):
    def __init__(self, controller: Controller, handler: RecordingHandler, port: int) -> None:
        self.controller = controller
        self.handler = handler
        self.host = "127.0.0.1"
        self.port = port

    @property
    def messages(self) -> list[EmailMessage]:
        return self.handler.messages

    def refuse_next(self, times: int, reply: str = "451 4.3.0 Mailbox busy, try again") -> None:
        self.handler.refuse_next(times, reply)

    def settings(self) -> dict[str, Any]:
        """Settings overrides that send the app's mail here."""
        return {
            "mail_backend": "smtp",
            "smtp_host": self.host,
            "smtp_port": self.port,
            "smtp_starttls": False,
            "smtp_timeout_s": 5,
        }


class OutboxFolder(Mailbox):
    """The `.eml` files MAIL_BACKEND=file writes under MAIL_OUTBOX_DIR (named by time)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=policy.default)
        found = []
        for path in sorted(self.directory.glob("*.eml")):
            message = parser.parsebytes(path.read_bytes())
            assert isinstance(message, EmailMessage)
            found.append(message)
        return found


@contextmanager
def smtp_server(port: int | None = None, **smtp_parameters: Any) -> Iterator[SmtpServer]:
    """A started SMTP server; `smtp_parameters` go to aiosmtpd's SMTP (TLS, auth...)."""
    handler = RecordingHandler()
    port = port or free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, **smtp_parameters)
    controller.start()
    try:
        yield SmtpServer(controller, handler, port)
    finally:
        controller.stop()


TOKEN_LINK = re.compile(r"(https?://\S+?/(?:reset-password|verify-email)\?token=([A-Za-z0-9_\-]+))")


def text_body(message: EmailMessage) -> str:
    part = message.get_body(("plain",))
    assert part is not None, "no plain-text part"
    return part.get_content()


def html_body(message: EmailMessage) -> str:
    part = message.get_body(("html",))
    assert part is not None, "no HTML part"
    return part.get_content()


def link_in(message: EmailMessage) -> tuple[str, str]:
    """The (link, token) a reset or verification mail carries in its plain-text part."""
    found = TOKEN_LINK.search(text_body(message))
    assert found, f"no link in: {text_body(message)}"
    return found.group(1), found.group(2)
