"""Outgoing mail: templates rendered to plain text + HTML, delivered by one transport.

`build_mailer(settings)` is called once per process (`create_app`, the event consumer); event
handlers are the only senders, so no request ever waits for a mail server.
"""

from api.core.mail.mailer import Mailer, Recipient, build_mailer
from api.core.mail.templates import MailTemplate
from api.core.mail.transports import MailDeliveryError, MailTransport

__all__ = [
    "MailDeliveryError",
    "MailTemplate",
    "MailTransport",
    "Mailer",
    "Recipient",
    "build_mailer",
]
