"""Shared fixtures: every API test runs against a real, migrated SQLite file and, when one is
reachable, a real PostgreSQL database (set PIXELGATE_REQUIRE_POSTGRES=1 to fail instead of skip).

Processing and storage backends: `PIXELGATE_TEST_PROCESSING` (`local`, `celery` or both, comma
separated; default `local`) and `PIXELGATE_TEST_STORAGE` (`local`, `s3`; default `local`).
Under `celery` every app's jobs run on one real `celery -A api.worker worker` per session (on
the session's PostgreSQL database and a fresh RabbitMQ vhost; SQLite is skipped there, since
workers on other hosts cannot share a file); under `s3` images live in a real SeaweedFS
(`weed mini`, started once per session), a fresh bucket per test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
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
from tests.support.broker import (
    RABBITMQ_SERVER_URL,
    REQUIRE_RABBITMQ,
    fresh_rabbitmq_vhost,
    rabbitmq_reachable,
)
from tests.support.databases import (
    BACKENDS,
    POSTGRES_SERVER_URL,
    REQUIRE_POSTGRES,
    fresh_postgres_database,
    fresh_redis_database,
    migrate,
    postgres_reachable,
    truncate_all,
)
from tests.support.object_store import ObjectStore, seaweedfs_server
from tests.support.paths import REPO_ROOT
from tests.support.servers import api_env
from tests.support.workers import WorkerProcess, celery_worker

PROCESSING_BACKENDS = [
    b for b in os.environ.get("PIXELGATE_TEST_PROCESSING", "local").split(",") if b
]
STORAGE_BACKENDS = [b for b in os.environ.get("PIXELGATE_TEST_STORAGE", "local").split(",") if b]
# The session's workers beat this often; tests' apps keep their own (default) heartbeat.
SESSION_WORKER_HEARTBEAT_S = 1.0


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


@pytest.fixture(params=PROCESSING_BACKENDS)
def processing_backend(request: pytest.FixtureRequest) -> str:
    if request.param != "local" and request.node.get_closest_marker("local_processing"):
        pytest.skip("about the in-process engine")
    return request.param


@pytest.fixture(params=STORAGE_BACKENDS)
def storage_backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, processing_backend: str) -> str:
    """A migrated, empty database of each backend in turn."""
    if request.param == "sqlite":
        if processing_backend == "celery":
            pytest.skip("Celery workers share a PostgreSQL database, not a SQLite file")
        path = tmp_path / "app.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_url")
    # The session's Celery workers keep their server instances across tests.
    truncate_all(url, keep=("server_instances",) if processing_backend == "celery" else ())
    return url


@pytest.fixture(scope="session")
def rabbitmq_server_url() -> str:
    if not rabbitmq_reachable():
        if REQUIRE_RABBITMQ:
            pytest.fail(f"RabbitMQ is required but not reachable at {RABBITMQ_SERVER_URL}")
        pytest.skip("RabbitMQ is not reachable")
    return RABBITMQ_SERVER_URL


@pytest.fixture(scope="session")
def celery_broker_url(rabbitmq_server_url: str) -> Iterator[str]:
    """A fresh vhost of the local RabbitMQ for this test session, deleted afterwards."""
    with fresh_rabbitmq_vhost(rabbitmq_server_url) as url:
        yield url


@pytest.fixture(scope="session")
def object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ObjectStore]:
    """One SeaweedFS S3 server for the session (`weed mini` on free ports)."""
    directory = tmp_path_factory.mktemp("seaweedfs")
    with seaweedfs_server(directory / "data", directory / "weed.log") as store:
        yield store


@pytest.fixture
def s3_bucket(object_store: ObjectStore) -> Iterator[str]:
    with object_store.fresh_bucket() as bucket:
        yield bucket


class SessionWorkers:
    """One real Celery worker per storage backend, started on first use and kept for the
    session; each test gets the storage emptied (the database is truncated by `database_url`)."""

    def __init__(self, request: pytest.FixtureRequest, root: Path) -> None:
        self._request = request
        self._root = root
        self._workers: dict[str, tuple[WorkerProcess, dict[str, Any]]] = {}
        self._stack = ExitStack()

    def settings_for(self, storage_backend: str) -> dict[str, Any]:
        if storage_backend not in self._workers:
            self._workers[storage_backend] = self._start(storage_backend)
        _worker, overrides = self._workers[storage_backend]
        _empty_storage(overrides, self._request)
        return overrides

    def _start(self, storage_backend: str) -> tuple[WorkerProcess, dict[str, Any]]:
        storage_dir = self._root / f"images-{storage_backend}"
        overrides: dict[str, Any] = {
            "processing_backend": "celery",
            "celery_broker_url": self._request.getfixturevalue("celery_broker_url"),
            "storage_dir": storage_dir,
        }
        if storage_backend == "s3":
            store: ObjectStore = self._request.getfixturevalue("object_store")
            # Not removed afterwards: the session's SeaweedFS (and its data) goes first.
            bucket = store.new_bucket()
            overrides.update(store.settings(bucket))
        env = api_env(
            self._request.getfixturevalue("postgres_url"),
            storage_dir,
            JOB_HEARTBEAT_S=str(SESSION_WORKER_HEARTBEAT_S),
            **{key.upper(): str(value) for key, value in overrides.items()},
        )
        log_path = self._root / f"worker-{storage_backend}.log"
        worker = self._stack.enter_context(celery_worker(env, log_path))
        return worker, overrides

    def close(self) -> None:
        self._stack.close()


def _empty_storage(overrides: dict[str, Any], request: pytest.FixtureRequest) -> None:
    if overrides.get("storage_backend") == "s3":
        store: ObjectStore = request.getfixturevalue("object_store")
        client = store.client()
        for key in store.keys(overrides["s3_bucket"]):
            client.delete_object(Bucket=overrides["s3_bucket"], Key=key)
    storage_dir: Path = overrides["storage_dir"]
    if storage_dir.exists():
        shutil.rmtree(storage_dir)


@pytest.fixture(scope="session")
def session_workers(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    celery_broker_url: str,
    postgres_url: str,
) -> Iterator[SessionWorkers]:
    if "s3" in STORAGE_BACKENDS:
        request.getfixturevalue("object_store")  # set up first, so it is stopped last
    workers = SessionWorkers(request, tmp_path_factory.mktemp("celery"))
    yield workers
    workers.close()


@pytest.fixture
def backend_settings(
    request: pytest.FixtureRequest, processing_backend: str, storage_backend: str
) -> dict[str, Any]:
    """Settings overrides that put a test's apps on the chosen backends."""
    if processing_backend == "celery":
        return request.getfixturevalue("session_workers").settings_for(storage_backend)
    if storage_backend == "s3":
        store: ObjectStore = request.getfixturevalue("object_store")
        return store.settings(request.getfixturevalue("s3_bucket"))
    return {}


@pytest.fixture
def suite_cache_url() -> Iterator[str | None]:
    """With PIXELGATE_TEST_CACHE=1 every test app caches in a fresh Redis database (the run of
    the auth suite with the cache on, see scripts/test.sh); otherwise none."""
    if os.environ.get("PIXELGATE_TEST_CACHE") != "1":
        yield None
        return
    with fresh_redis_database() as url:
        yield url


@pytest.fixture
def make_settings(
    database_url: str,
    tmp_path: Path,
    backend_settings: dict[str, Any],
    suite_cache_url: str | None,
) -> Callable[..., Settings]:
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
            # Mails of tests that do not read them go to the test's own directory.
            "mail_outbox_dir": tmp_path / "outbox",
            **backend_settings,
        }
        if suite_cache_url is not None:
            values["cache_url"] = suite_cache_url
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
