"""Entry point: `streamlit run frontend/app.py`.

An `st.App` — Streamlit's ASGI server — running `frontend/main.py`, plus one route of the
dashboard's own origin that sets and clears the HttpOnly "remember me" cookie
(see `frontend/auth/cookie.py`).
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO_ROOT = str(Path(__file__).resolve().parent.parent)
if REPO_ROOT not in sys.path:  # `streamlit run` puts only frontend/ on the path
    sys.path.insert(0, REPO_ROOT)

import streamlit as st  # noqa: E402

from frontend.auth import cookie  # noqa: E402

app = st.App(Path(__file__).resolve().parent / "main.py", routes=cookie.routes())
