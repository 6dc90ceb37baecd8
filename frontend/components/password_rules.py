"""The password rules as the API publishes them (GET /auth/password-policy), for every form
that sets a password: sign-up, change and reset show the configured policy, not a copy."""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client

POLICY_KEY = "password_policy"


def _policy() -> dict[str, Any] | None:
    """Fetched once per browser session (a policy changes with a server restart at most)."""
    if POLICY_KEY not in st.session_state:
        try:
            st.session_state[POLICY_KEY] = api_client().password_policy()
        except ApiError:
            return None
    return st.session_state[POLICY_KEY]


def password_rules(extra: str = "") -> None:
    """The rules as a list in an info box; `extra` adds lines of markdown below them."""
    policy = _policy()
    if policy is None:
        st.caption(
            "The password rules could not be loaded just now; if a password breaks one, the "
            "message will say which."
        )
        return
    rules = "\n".join(f"- {rule}" for rule in policy["rules"])
    st.info(f"**Password rules**\n{rules}\n\n{extra}".strip(), icon=":material/shield_lock:")
