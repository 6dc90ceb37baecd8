"""Event handlers that mail the two-factor notices to the account's address: 2FA turned on,
turned off (by its owner, or removed by an admin), recovery codes replaced.

They run after the request's answer (in-process relay or the consumer). A notice names no
code or secret; a delivery failure raises, so the relay retries it.
"""

from __future__ import annotations

from api.core.mail import MailTemplate
from api.events.context import HandlerContext
from api.models import User
from api.schemas.event import Event, EventType
from api.services.mfa import ADMIN_RESET


def _template(event: Event) -> MailTemplate:
    if event.type == EventType.USER_MFA_ENABLED:
        return MailTemplate.MFA_ENABLED
    if event.type == EventType.USER_MFA_RECOVERY_CODES_REGENERATED:
        return MailTemplate.MFA_RECOVERY_CODES_REGENERATED
    if event.data.get("reason") == ADMIN_RESET:
        return MailTemplate.MFA_RESET
    return MailTemplate.MFA_DISABLED


def mail_mfa_notice(event: Event, context: HandlerContext) -> None:
    """`user.mfa_enabled`, `user.mfa_disabled`, `user.mfa_recovery_codes_regenerated`."""
    with context.database.session() as db:
        user = db.get(User, event.data["user_id"])
    if user is None or user.deleted_at is not None:
        return
    context.mailer.send(_template(event), user, occurred_at=event.occurred_at)
