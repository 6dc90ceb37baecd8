"""Log in with username or email (the form lives with the rest of the login, in frontend/auth)."""

from __future__ import annotations

from frontend.auth.login import login_form

login_form()
