"""Which pages exist for this run: built from the auth state, so a page that is not allowed is
not registered at all — Streamlit can't run it, whatever URL the visitor types."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from frontend.auth.state import AuthState

LOGIN = "views/login.py"
SIGNUP = "views/signup.py"
FORGOT_PASSWORD = "views/forgot_password.py"
RESET_PASSWORD = "views/reset_password.py"
VERIFY_EMAIL = "views/verify_email.py"
# Reachable logged in or out, by the links in mails; not in the menu.
LINK_PAGES = (FORGOT_PASSWORD, RESET_PASSWORD, VERIFY_EMAIL)
DASHBOARD = "views/dashboard.py"
IMAGES = "views/images.py"
JOBS = "views/jobs.py"
LOGIN_HISTORY = "views/login_history.py"
SESSIONS = "views/sessions.py"
API_KEYS = "views/api_keys.py"
ACCOUNT = "views/account.py"
ADMIN_USERS = "views/admin_users.py"
ADMIN_LOGINS = "views/admin_logins.py"
ADMIN_STATS = "views/admin_stats.py"


def _mailed_link_pages() -> list[StreamlitPage]:
    """The pages mails link to (`PUBLIC_DASHBOARD_URL/reset-password?token=…`, and
    `/forgot-password` from a notice): reachable logged in or out, and not in the menu."""
    return [
        st.Page(
            FORGOT_PASSWORD,
            title="Forgot password",
            icon=":material/lock_reset:",
            url_path="forgot-password",
            visibility="hidden",
        ),
        st.Page(
            RESET_PASSWORD,
            title="Reset password",
            icon=":material/lock_reset:",
            url_path="reset-password",
            visibility="hidden",
        ),
        st.Page(
            VERIFY_EMAIL,
            title="Verify email",
            icon=":material/mark_email_read:",
            url_path="verify-email",
            visibility="hidden",
        ),
    ]


def pages_for(auth: AuthState) -> dict[str, list[StreamlitPage]]:
    if not auth.logged_in:
        return {
            "": [
                st.Page(LOGIN, title="Log in", icon=":material/login:", default=True),
                st.Page(SIGNUP, title="Sign up", icon=":material/person_add:"),
                *_mailed_link_pages(),
            ]
        }
    pages = {
        "": [
            st.Page(DASHBOARD, title="Dashboard", icon=":material/dashboard:", default=True),
            st.Page(IMAGES, title="Images", icon=":material/photo_library:"),
            st.Page(JOBS, title="Jobs", icon=":material/pending_actions:"),
            *_mailed_link_pages(),
        ],
        "Account": [
            st.Page(LOGIN_HISTORY, title="Login history", icon=":material/history:"),
            st.Page(SESSIONS, title="Sessions", icon=":material/devices:"),
            st.Page(API_KEYS, title="API keys", icon=":material/key:"),
            st.Page(ACCOUNT, title="Account", icon=":material/manage_accounts:"),
        ],
    }
    if auth.is_admin:
        pages["Admin"] = [
            st.Page(ADMIN_USERS, title="Users", icon=":material/group:"),
            st.Page(ADMIN_LOGINS, title="All logins", icon=":material/policy:"),
            st.Page(ADMIN_STATS, title="Statistics", icon=":material/monitoring:"),
        ]
    return pages
