"""The login form: on the login page, and in place of any page that needs a login (see
frontend/navigation.py)."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError, MfaChallenge
from frontend.auth.session import LOGIN_FLASH_KEY, api_client, auth_state
from frontend.components.feedback import show_error
from frontend.sitemap import FORGOT_PASSWORD, SIGNUP

UNVERIFIED_HINT = (
    " Open the link in the verification mail we sent you, or use “Forgot password?”: "
    "a reset link confirms the address too."
)

# The login waiting for its second step (the password was right, the account has 2FA).
MFA_CHALLENGE_KEY = "mfa_challenge"
CHALLENGE_EXPIRED = "The two-factor step took too long. Log in again."


def _show_login_error(error: ApiError) -> None:
    if error.retry_after and "try again" not in error.message.lower():
        error.message += f" Try again in {error.retry_after} seconds."
    if error.status == 403 and "not verified" in error.message:
        error.message += UNVERIFIED_HINT
    show_error(error)


def _log_in(username: str, password: str, remember: bool) -> None:
    if not username or not password:
        st.error("Enter your username (or email) and your password.")
        return
    try:
        result = api_client().login(username, password, remember_me=remember)
    except ApiError as error:
        _show_login_error(error)
    else:
        if isinstance(result, MfaChallenge):
            st.session_state[MFA_CHALLENGE_KEY] = result
        st.rerun()


def _start_over(notice: str | None = None) -> None:
    """Back to the password form, saying why."""
    st.session_state.pop(MFA_CHALLENGE_KEY, None)
    auth_state().notice = notice
    st.rerun()


def _verify(challenge: MfaChallenge, code: str) -> None:
    if not code:
        st.error("Enter the code from your authenticator app, or a recovery code.")
        return
    if challenge.expired:
        _start_over(CHALLENGE_EXPIRED)
    try:
        api_client().verify_mfa(challenge, code)
    except ApiError as error:
        # A wrong code may be tried again; a challenge refused for good needs a new login.
        if error.status == 429 or challenge.expired:
            _start_over(error.message)
        _show_login_error(error)
    else:
        st.session_state.pop(MFA_CHALLENGE_KEY, None)
        st.rerun()


def _second_step_form(challenge: MfaChallenge) -> None:
    st.subheader("Two-factor authentication")
    st.caption(
        "Enter the 6-digit code your authenticator app shows for Pixelgate, or one of your "
        "recovery codes."
    )
    with st.form("mfa_form"):
        code = st.text_input("Code", key="mfa_code", autocomplete="one-time-code", max_chars=64)
        submitted = st.form_submit_button("Verify", type="primary", width="stretch")
    if submitted:
        _verify(challenge, code.strip())
    if st.button("Back to log in", key="mfa_back", icon=":material/arrow_back:"):
        _start_over()


def login_form(wanted: str | None = None) -> None:
    """Username or email, password, remember me, then the two-factor code when the account
    has 2FA; lockouts and rate limits say when to retry.

    `wanted`: the title of the page the visitor asked for, shown once the login succeeds.
    """
    auth = auth_state()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Log in")
        st.caption("Welcome back to Pixelgate — your private image library.")
        if auth.notice:
            st.warning(auth.notice, icon=":material/schedule:")
        if wanted:
            st.info(f"Log in to see **{wanted}**.", icon=":material/lock:")
        if flash := st.session_state.pop(LOGIN_FLASH_KEY, None):
            st.success(flash, icon=":material/check_circle:")

        challenge = st.session_state.get(MFA_CHALLENGE_KEY)
        if isinstance(challenge, MfaChallenge):
            _second_step_form(challenge)
            return

        with st.form("login_form"):
            username = st.text_input(
                "Username or email", key="login_username", autocomplete="username"
            )
            password = st.text_input(
                "Password", type="password", key="login_password", autocomplete="current-password"
            )
            remember = st.checkbox(
                "Remember me on this device",
                key="login_remember",
                help="Stay logged in when the page is reloaded. Leave it off on shared computers.",
            )
            submitted = st.form_submit_button("Log in", type="primary", width="stretch")
        if submitted:
            _log_in(username.strip(), password, remember)

        st.page_link(FORGOT_PASSWORD, label="Forgot password?", icon=":material/lock_reset:")
        st.page_link(SIGNUP, label="No account yet? Sign up", icon=":material/person_add:")
