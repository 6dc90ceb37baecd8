"""Dashboard settings, read from the environment on every use (tests point it at their server)."""

from __future__ import annotations

import os

DEFAULT_API_BASE_URL = "http://localhost:8000"

# (connect, read) seconds. Uploads and downloads move whole images, so they get a longer read.
REQUEST_TIMEOUT = (5.0, 30.0)
TRANSFER_TIMEOUT = (5.0, 120.0)

# The dashboard's own HttpOnly cookie holding the refresh token of a "remember me" login.
REFRESH_COOKIE_NAME = "pixelgate_refresh"


def api_base_url() -> str:
    return os.environ.get("API_BASE_URL", DEFAULT_API_BASE_URL).rstrip("/")


def cookie_secure() -> bool:
    """Same switch as the API's: mark cookies Secure when served behind HTTPS."""
    return os.environ.get("COOKIE_SECURE", "false").strip().lower() in {"1", "true", "yes", "on"}
