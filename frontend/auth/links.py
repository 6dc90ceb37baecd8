"""The one-time token of a mailed link (`/reset-password?token=…`, `/verify-email?token=…`):
read from the URL, and taken out of the address bar once it has been used."""

from __future__ import annotations

import streamlit as st

TOKEN_PARAM = "token"


def link_token() -> str | None:
    token = st.query_params.get(TOKEN_PARAM, "").strip()
    return token or None


def forget_link_token() -> None:
    """A used (or refused) token has no business in the address bar or the history."""
    if TOKEN_PARAM in st.query_params:
        del st.query_params[TOKEN_PARAM]
