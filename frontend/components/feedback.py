"""How errors, per-field messages and empty lists look on every page."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError, ApiUnavailable

FIELD_ERRORS_SUFFIX = "__field_errors"


def show_error(error: ApiError) -> None:
    """The server's message as written; outages get the friendly wording and an icon."""
    if isinstance(error, ApiUnavailable):
        st.error(error.message, icon=":material/cloud_off:")
    else:
        st.error(error.message, icon=":material/error:")


def remember_field_errors(form_key: str, error: ApiError) -> None:
    """Keeps a 422's per-field messages so the next run shows each under its field."""
    st.session_state[form_key + FIELD_ERRORS_SUFFIX] = dict(error.field_errors)


def field_errors(form_key: str) -> dict[str, str]:
    return st.session_state.get(form_key + FIELD_ERRORS_SUFFIX, {})


def clear_field_errors(form_key: str) -> None:
    st.session_state.pop(form_key + FIELD_ERRORS_SUFFIX, None)


def field_error(form_key: str, name: str) -> None:
    message = field_errors(form_key).get(name)
    if message:
        st.markdown(f":red[:material/error: {message}]")


def empty_state(title: str, hint: str, icon: str = ":material/inbox:") -> None:
    with st.container(border=True):
        st.markdown(f"#### {icon} {title}")
        st.caption(hint)
