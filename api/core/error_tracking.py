"""Optional error tracking with Sentry: initialised only when `SENTRY_DSN` is set, so nothing is
sent (and no integration is loaded) otherwise.

No personal data leaves: `send_default_pii=False` drops cookies, auth headers, user and IP;
request bodies (passwords, tokens) and local variables of stack frames are never attached.
"""

from __future__ import annotations

from api.core.config import Settings


def init_error_tracking(settings: Settings, component: str) -> bool:
    """Starts the Sentry client for this process (`component`: api, worker, consumer)."""
    if settings.sentry_dsn is None:
        return False
    import sentry_sdk

    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        environment=settings.env,
        send_default_pii=False,
        max_request_body_size="never",
        include_local_variables=False,
        traces_sample_rate=None,
    )
    sentry_sdk.set_tag("component", component)
    return True
