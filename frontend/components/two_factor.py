"""The Account page's "Two-factor authentication" section: enrol (QR code, the secret as text,
confirm with a code), recovery codes shown once with a download, regenerate them, turn 2FA off.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.api_client import ApiClient, ApiError
from frontend.components.feedback import show_error
from frontend.components.formatting import when

SETUP_KEY = "mfa_setup"  # the pending secret of an enrolment under way (never sent back)
NEW_CODES_KEY = "mfa_new_recovery_codes"  # shown once, until the user says they are kept
CODE_HELP = "The 6-digit code your authenticator app shows for Pixelgate."


def _recovery_codes_text(username: str, codes: list[str]) -> str:
    lines = [
        f"Pixelgate recovery codes for {username}",
        "Each code lets you log in once instead of a code from your authenticator app.",
        "",
        *codes,
        "",
    ]
    return "\n".join(lines)


def _show_new_codes(username: str, codes: list[str]) -> None:
    with st.container(border=True):
        st.success(
            "Your recovery codes. Keep them somewhere safe: each lets you log in once if you "
            "lose your phone, and they are shown only this once."
        )
        st.code("\n".join(codes), language=None)  # the code block has a copy button
        st.download_button(
            "Download the codes",
            _recovery_codes_text(username, codes),
            file_name="pixelgate-recovery-codes.txt",
            mime="text/plain",
            icon=":material/download:",
            key="mfa_download_codes",
        )
        if st.button("I have saved them", icon=":material/check:", key="mfa_codes_saved"):
            st.session_state.pop(NEW_CODES_KEY, None)
            st.rerun()


def _enrol(client: ApiClient) -> None:
    setup: dict[str, Any] | None = st.session_state.get(SETUP_KEY)
    if setup is None:
        st.caption(
            "Protect your account with a second step at login: a code from an authenticator "
            "app on your phone (Google Authenticator, Aegis, 1Password, …)."
        )
        if st.button(
            "Set up two-factor authentication", icon=":material/phonelink_lock:", key="mfa_start"
        ):
            try:
                st.session_state[SETUP_KEY] = client.mfa_setup()
            except ApiError as error:
                show_error(error)
            else:
                st.rerun()
        return

    st.markdown("**1.** Scan this QR code with your authenticator app:")
    st.image(setup["qr_svg"], width=220)
    st.markdown("Or type this key into the app:")
    st.code(setup["secret"], language=None)
    st.markdown("**2.** Enter the code the app shows to turn two-factor authentication on.")
    with st.form("mfa_enable_form"):
        code = st.text_input(
            "Code", key="mfa_enable_code", autocomplete="one-time-code", help=CODE_HELP
        )
        submitted = st.form_submit_button("Turn on", type="primary")
    if submitted:
        try:
            codes = client.mfa_enable(code.strip())
        except ApiError as error:
            show_error(error)
        else:
            st.session_state.pop(SETUP_KEY, None)
            st.session_state[NEW_CODES_KEY] = codes
            st.toast("Two-factor authentication is on. Your other sessions were logged out.")
            st.rerun()
    if st.button("Cancel", key="mfa_cancel_setup"):
        st.session_state.pop(SETUP_KEY, None)
        st.rerun()


def _manage(client: ApiClient, status: dict[str, Any]) -> None:
    st.markdown(
        f":green[:material/verified_user:] **On** since {when(status['enabled_at'])} · "
        f"{status['recovery_codes_left']} recovery codes left"
    )
    regenerate, disable = st.columns(2, gap="large")
    with regenerate, st.form("mfa_regenerate_form"):
        st.markdown("**New recovery codes** (the old ones stop working)")
        code = st.text_input(
            "Code", key="mfa_regenerate_code", autocomplete="one-time-code", help=CODE_HELP
        )
        if st.form_submit_button("Make new codes"):
            try:
                st.session_state[NEW_CODES_KEY] = client.mfa_regenerate_codes(code.strip())
            except ApiError as error:
                show_error(error)
            else:
                st.rerun()
    with disable, st.form("mfa_disable_form"):
        st.markdown("**Turn off** two-factor authentication")
        password = st.text_input("Password", type="password", key="mfa_disable_password")
        code = st.text_input(
            "Code or recovery code", key="mfa_disable_code", autocomplete="one-time-code"
        )
        if st.form_submit_button("Turn off"):
            try:
                client.mfa_disable(password, code.strip())
            except ApiError as error:
                show_error(error)
            else:
                st.toast("Two-factor authentication is off.")
                st.rerun()


def two_factor_section(client: ApiClient, username: str) -> None:
    st.subheader("Two-factor authentication")
    if codes := st.session_state.get(NEW_CODES_KEY):
        _show_new_codes(username, codes)
    status = client.mfa_status()
    if status["enabled"]:
        st.session_state.pop(SETUP_KEY, None)
        _manage(client, status)
    else:
        _enrol(client)
