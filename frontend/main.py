"""The dashboard's Streamlit script (served by `frontend/app.py`): every run restores the login,
builds the navigation for it, runs the chosen page and keeps the refresh cookie in step."""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:  # `streamlit run` puts only frontend/ on the path
    sys.path.insert(0, REPO_ROOT)

import streamlit as st  # noqa: E402

from frontend.api_client import ApiError, SessionExpired  # noqa: E402
from frontend.auth.cookie import sync_cookie  # noqa: E402
from frontend.auth.logout import log_out  # noqa: E402
from frontend.auth.restore import resume_remembered_login  # noqa: E402
from frontend.auth.session import (  # noqa: E402
    api_client,
    auth_state,
    forget_user_data_after_logout,
)
from frontend.components.feedback import show_error  # noqa: E402
from frontend.components.verification import verification_banner  # noqa: E402
from frontend.navigation import navigate  # noqa: E402

# The tab icon is a file of ours, which Streamlit sends inline (an SVG becomes a data: URL). A
# ":material/…:" icon — here or a page's, which Streamlit uses when none is set here — would
# make every page load fetch it from Google's font host, and fail offline. Set on every run.
TAB_ICON = Path(__file__).resolve().parent / "assets" / "pixelgate.svg"
st.set_page_config(page_title="Pixelgate", page_icon=TAB_ICON, layout="wide")

auth = auth_state()
client = api_client()
resume_remembered_login()

if auth.logged_in:
    try:
        client.load_user()  # every run: a role change or deactivation shows at once
    except SessionExpired:
        pass
    except ApiError as error:  # the API is down or failing: say so once, offer a retry
        show_error(error)
        st.button("Try again", icon=":material/refresh:", key="retry_api")
        st.stop()
forget_user_data_after_logout()

page = navigate(auth)

with st.sidebar:
    st.markdown("### :material/photo_filter: Pixelgate")
    if auth.logged_in and auth.user:
        st.caption(f"Signed in as **{auth.user['username']}** · {auth.user['role']}")
        if st.button("Log out", icon=":material/logout:", key="sidebar_logout"):
            log_out()

if auth.logged_in and page.url_path != "verify-email":
    verification_banner()

try:
    page.run()
except SessionExpired:
    st.rerun()  # the same address now shows the login form with the expiry message
except ApiError as error:  # what a page did not handle itself: the message, never a traceback
    show_error(error)
finally:
    sync_cookie()  # after the page: its calls may have rotated the tokens
