"""Event handlers that mail recovery and verification links and the password notice.

They run after the request's answer (in-process relay or the consumer) and are the only
code that sends these mails. A delivery failure raises, so the relay retries with backoff;
a retry makes the link again under a new token (the one that failed never reached anyone).
Nothing here logs a link or a token.
"""

from __future__ import annotations

from api.core.mail import MailTemplate
from api.core.mail.mailer import RESET_PASSWORD_PAGE, VERIFY_EMAIL_PAGE
from api.events.context import HandlerContext
from api.models import TokenPurpose, User
from api.schemas.event import Event
from api.services.account_links import IssuedLink, issue_link

_LINKS = {
    TokenPurpose.PASSWORD_RESET: (MailTemplate.PASSWORD_RESET, RESET_PASSWORD_PAGE),
    TokenPurpose.EMAIL_VERIFICATION: (MailTemplate.VERIFY_EMAIL, VERIFY_EMAIL_PAGE),
}


def _mail_link(
    event: Event, context: HandlerContext, purpose: TokenPurpose, requested_by_id: int | None
) -> None:
    user_id = event.data["user_id"]
    if user_id is None:
        return  # an address that belongs to no account: nothing to send
    with context.database.session() as db:
        issued: IssuedLink | None = issue_link(
            db,
            context.settings,
            event_id=event.id,
            requested_at=event.occurred_at,
            user_id=user_id,
            purpose=purpose,
            requested_by_id=requested_by_id,
        )
    if issued is None:
        return
    template, page = _LINKS[purpose]
    context.mailer.send(
        template,
        issued.user,
        occurred_at=event.occurred_at,
        link=context.mailer.link(page, issued.raw_token),
        expires_in=issued.lifetime,
    )


def mail_password_reset_link(event: Event, context: HandlerContext) -> None:
    """`user.password_reset_requested`: a reset link, within the account's hourly limit."""
    _mail_link(event, context, TokenPurpose.PASSWORD_RESET, event.data.get("requested_by"))


def mail_verification_link(event: Event, context: HandlerContext) -> None:
    """`user.created` and `user.email_verification_requested`: a verification link, unless
    the address is verified already."""
    _mail_link(event, context, TokenPurpose.EMAIL_VERIFICATION, None)


def mail_password_changed_notice(event: Event, context: HandlerContext) -> None:
    """`user.password_changed` (a change or a reset): tells the account's address."""
    with context.database.session() as db:
        user = db.get(User, event.data["user_id"])
    if user is None or user.deleted_at is not None:
        return
    context.mailer.send(MailTemplate.PASSWORD_CHANGED, user, occurred_at=event.occurred_at)
