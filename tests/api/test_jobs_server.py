"""Against a real uvicorn server process: what only a real server and its sockets show.

The database backend plays no part in these checks, so they run on SQLite only (a copy of the
migrated template) to keep the suite quick.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.accounts import Account, AccountFactory
from tests.support.images import upload_image
from tests.support.servers import LiveClient, api_env, api_server

# A few seconds of work per job from a tiny file.
SLOW = [{"op": "resize", "width": 3000, "height": 3000}, *[{"op": "blur", "radius": 50}] * 4]
MAX_UPLOAD_MB = 2


@pytest.fixture
def server_database(sqlite_template: Path, tmp_path: Path) -> str:
    database = tmp_path / "app.db"
    shutil.copyfile(sqlite_template, database)
    return f"sqlite:///{database}"


@pytest.fixture
def alice(server_database: str) -> Iterator[Account]:
    factory = AccountFactory(server_database)
    yield factory.create("alice")
    factory.close()


@pytest.fixture
def server(server_database: str, tmp_path: Path) -> Iterator[str]:
    env = api_env(
        server_database,
        tmp_path / "images",
        PROCESS_WORKERS="2",
        MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
    )
    with api_server(env, tmp_path / "server.log") as base_url:
        yield base_url


def _running_jobs(http: LiveClient, headers: dict[str, str]) -> int:
    return http.get("/jobs?status=running", headers=headers).json()["total"]


def test_health_answers_while_every_worker_is_busy_and_callers_wait(
    server: str, alice: Account
) -> None:
    with LiveClient(server, timeout=120) as http:
        headers = alice.login(http).headers
        image_id = upload_image(http, headers).json()["id"]
        body = {"operations": SLOW}
        with ThreadPoolExecutor(2) as callers:
            # Two callers wait (wait=true) for their jobs; one more job waits in the queue.
            waiting = [
                callers.submit(http.post, f"/images/{image_id}/process", json=body, headers=headers)
                for _ in range(2)
            ]
            queued = http.post(
                f"/images/{image_id}/process", json={**body, "wait": False}, headers=headers
            )
            assert queued.status_code == 202
            deadline = time.monotonic() + 120
            while _running_jobs(http, headers) < 2 and time.monotonic() < deadline:
                time.sleep(0.02)
            assert _running_jobs(http, headers) == 2  # the pool is saturated...

            for _ in range(20):  # ...and the server still answers
                health = http.get("/health")
                assert health.status_code == 200
                assert health.json() == {"status": "ok", "database": "ok", "workers": 2}
            listed = http.get("/images", headers=headers)
            assert listed.status_code == 200

            finished = [future.result() for future in waiting]
        assert [response.status_code for response in finished] == [200, 200]
        assert [response.json()["status"] for response in finished] == ["done", "done"]


def test_an_oversized_upload_is_refused_without_reading_the_whole_body(
    server: str, alice: Account
) -> None:
    sent_megabytes = 0

    def body() -> Iterator[bytes]:
        nonlocal sent_megabytes
        yield (
            b"--XyZ\r\nContent-Disposition: form-data; name=file; filename=big.png\r\n"
            b"Content-Type: image/png\r\n\r\n"
        )
        megabyte = os.urandom(1024 * 1024)
        for _ in range(500):  # 500 MB, streamed without a Content-Length
            sent_megabytes += 1
            yield megabyte
        yield b"\r\n--XyZ--\r\n"

    with LiveClient(server, timeout=120) as http:
        headers = alice.login(http).headers
        response = http.post(
            "/images",
            content=body(),
            headers={**headers, "Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert response.status_code == 413
        assert f"{MAX_UPLOAD_MB} MB" in response.json()["detail"]
        # The server stopped reading at the limit: the client never got to send most of it.
        assert sent_megabytes < 100
        assert http.get("/images", headers=headers).json()["total"] == 0
