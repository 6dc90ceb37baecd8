"""STORAGE_BACKEND=s3 rules that need the store itself: a missing bucket is made at start-up
(as compose's SeaweedFS starts empty), and an unreachable store is a 503 with Retry-After that
leaves no row and no scratch file. (Every Images/Jobs test also runs on s3:
PIXELGATE_TEST_STORAGE=s3.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from api.models import Image
from tests.deploy.deploy_files import interpolate, load_compose
from tests.support.accounts import register
from tests.support.databases import app_session
from tests.support.images import stored_keys, upload_image
from tests.support.object_store import ObjectStore, seaweedfs_server
from tests.support.servers import free_port


def test_a_missing_bucket_is_made_at_start_up(
    make_client: Callable[..., Any], object_store: ObjectStore
) -> None:
    bucket = f"pixelgate-new-{uuid.uuid4().hex[:8]}"
    with make_client(**object_store.settings(bucket)) as client:
        headers = register(client, "alice")["headers"]
        assert upload_image(client, headers).status_code == 201
        assert len(stored_keys(client)) == 1
    assert len(object_store.keys(bucket)) == 1


def test_an_unreachable_store_is_a_503_and_leaves_nothing(
    make_client: Callable[..., Any], object_store: ObjectStore
) -> None:
    settings = {
        **object_store.settings("anything"),
        "s3_endpoint_url": f"http://127.0.0.1:{free_port()}",
    }
    with make_client(**settings) as client:
        headers = register(client, "alice")["headers"]
        response = upload_image(client, headers)
        assert response.status_code == 503
        assert int(response.headers["Retry-After"]) >= 1
        assert "image store is unreachable" in response.json()["detail"]
        with app_session(client) as db:
            assert db.scalar(select(func.count()).select_from(Image)) == 0
        storage_dir = client.app.state.settings.storage_dir
        assert [p for p in storage_dir.rglob("*") if p.is_file()] == []


def test_seaweedfs_starts_as_compose_runs_it_with_its_bucket(tmp_path: Path) -> None:
    """Compose's `seaweedfs` command (its data directory and address made local)."""
    command = load_compose()["services"]["seaweedfs"]["command"]
    assert command[0] == "mini"
    flags = [flag for flag in command[1:] if not flag.startswith(("-dir=", "-ip"))]
    flags = interpolate(flags, {"SEAWEEDFS_BUCKET": "compose-bucket"})
    with seaweedfs_server(tmp_path / "data", tmp_path / "weed.log", flags) as store:
        deadline = time.monotonic() + 60  # made just after the S3 endpoint answers
        while not (names := [b["Name"] for b in store.client().list_buckets()["Buckets"]]):
            assert time.monotonic() < deadline, "the bucket was never made"
            time.sleep(0.2)
    assert names == ["compose-bucket"]
