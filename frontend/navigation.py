"""Which pages exist for this run: built from the auth state, so a page that is not allowed is
not registered at all — Streamlit can't run it, whatever URL the visitor types."""

from __future__ import annotations

import streamlit as st
from streamlit.navigation.page import StreamlitPage

from frontend.auth.state import AuthState

LOGIN = "views/login.py"
SIGNUP = "views/signup.py"
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


def pages_for(auth: AuthState) -> dict[str, list[StreamlitPage]]:
    if not auth.logged_in:
        return {
            "": [
                st.Page(LOGIN, title="Log in", icon=":material/login:", default=True),
                st.Page(SIGNUP, title="Sign up", icon=":material/person_add:"),
            ]
        }
    pages = {
        "": [
            st.Page(DASHBOARD, title="Dashboard", icon=":material/dashboard:", default=True),
            st.Page(IMAGES, title="Images", icon=":material/photo_library:"),
            st.Page(JOBS, title="Jobs", icon=":material/pending_actions:"),
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
