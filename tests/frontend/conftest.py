"""Dashboard tests: Streamlit's AppTest drives the real script against a real API server
(uvicorn on a migrated SQLite file), shared by the whole package to keep the suite fast."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.support.accounts import DEFAULT_PASSWORD
from tests.support.databases import migrate
from tests.support.mail import OutboxFolder
from tests.support.paths import REPO_ROOT
from tests.support.servers import api_env, api_server

MAIN_SCRIPT = REPO_ROOT / "frontend" / "main.py"
ADMIN_USERNAME = "root_admin"
# Script runs that call the API (bcrypt at 4 rounds, image processing) need more than 3 s.
RUN_TIMEOUT = 90


@pytest.fixture(scope="package")
def api_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("dashboard-api")


@pytest.fixture(scope="package")
def mail_outbox(api_workdir: Path) -> OutboxFolder:
    """The mails the API server sends (MAIL_BACKEND=file, the default)."""
    return OutboxFolder(api_workdir / "outbox")


@pytest.fixture(scope="package")
def api_url(api_workdir: Path) -> Iterator[str]:
    """A real API server with an admin account; API_BASE_URL points the dashboard at it."""
    workdir = api_workdir
    database_url = f"sqlite:///{workdir / 'app.db'}"
    migrate(database_url)
    env = api_env(
        database_url,
        workdir / "images",
        ADMIN_USERNAME=ADMIN_USERNAME,
        ADMIN_EMAIL=f"{ADMIN_USERNAME}@example.com",
        ADMIN_PASSWORD=DEFAULT_PASSWORD,
    )
    with api_server(env, workdir / "api.log") as base_url, pytest.MonkeyPatch.context() as patch:
        patch.setenv("API_BASE_URL", base_url)
        yield base_url


@pytest.fixture
def app(api_url: str) -> AppTest:
    """The dashboard, not yet run."""
    return AppTest.from_file(str(MAIN_SCRIPT), default_timeout=RUN_TIMEOUT)
