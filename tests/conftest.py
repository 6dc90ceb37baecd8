"""Shared fixtures: every API test runs against a real, migrated SQLite file and, when one is
reachable, a real PostgreSQL database (set PIXELGATE_REQUIRE_POSTGRES=1 to fail instead of skip).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.core.config import Settings
from tests.support.accounts import (
    TEST_BCRYPT_ROUNDS,
    TEST_JWT_SECRET,
    AccountFactory,
    admin_settings,
)
from tests.support.databases import (
    BACKENDS,
    POSTGRES_SERVER_URL,
    REQUIRE_POSTGRES,
    fresh_postgres_database,
    migrate,
    postgres_reachable,
    truncate_all,
)
from tests.support.paths import REPO_ROOT


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test gets a copy (migrating once is the slow part)."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    """The run's PostgreSQL server; skips when unreachable (fails when it is required)."""
    if not postgres_reachable():
        if REQUIRE_POSTGRES:
            pytest.fail(f"PostgreSQL is required but not reachable at {POSTGRES_SERVER_URL}")
        pytest.skip("PostgreSQL is not reachable")
    return POSTGRES_SERVER_URL


@pytest.fixture(scope="session")
def postgres_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head, dropped afterwards."""
    with fresh_postgres_database(postgres_server_url) as url:
        migrate(url)
        yield url


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database of each backend in turn."""
    if request.param == "sqlite":
        path = tmp_path / "app.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    truncate_all(url)
    return url


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings for a test app; keyword arguments override fields (environment ignored)."""

    def factory(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "development",
            "database_url": database_url,
            "storage_dir": tmp_path / "images",
            "jwt_secret_key": TEST_JWT_SECRET,
            "bcrypt_rounds": TEST_BCRYPT_ROUNDS,
            "rate_limit_enabled": False,
            "rate_limit_storage_uri": "memory://",
            "process_workers": 2,
            "admin_username": None,
            "admin_email": None,
            "admin_password": None,
            "forwarded_allow_ips": [],
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return factory


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def accounts(database_url: str, settings: Settings) -> Iterator[AccountFactory]:
    """Writes accounts into the test database, hashed at the test apps' bcrypt rounds."""
    factory = AccountFactory(database_url, settings.bcrypt_rounds)
    yield factory
    factory.close()


@pytest.fixture
def make_client(
    make_settings: Callable[..., Settings],
) -> Iterator[Callable[..., AbstractContextManager[TestClient]]]:
    """`with make_client(**overrides) as client:` an app with its own settings, started."""

    @contextmanager
    def factory(**overrides: Any) -> Iterator[TestClient]:
        app = create_app(make_settings(**overrides))
        with TestClient(app) as client:
            yield client

    yield factory


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def admin_client(
    make_client: Callable[..., AbstractContextManager[TestClient]],
) -> Iterator[TestClient]:
    """A started app whose start-up created the admin `ADMIN_USERNAME` (DEFAULT_PASSWORD)."""
    with make_client(**admin_settings()) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def docs_client(tmp_path_factory: pytest.TempPathFactory) -> TestClient:
    """An app that is never started: enough for its OpenAPI document, and for requests that
    are answered before any dependency runs (the database is never touched)."""
    database = tmp_path_factory.mktemp("docs-app") / "unused.db"
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite:///{database}", jwt_secret_key=TEST_JWT_SECRET
    )
    return TestClient(create_app(settings))


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT
