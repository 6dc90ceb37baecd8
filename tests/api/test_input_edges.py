"""Inputs at the edges of what the database and Pillow accept: each a clear 4xx or a success,
never a 500."""

from __future__ import annotations

import io
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.models import Job
from tests.support.accounts import ADMIN_USERNAME, AccountFactory, login_headers
from tests.support.databases import app_session
from tests.support.images import process, upload_image

TOO_FAR = 2**63  # past what SQLite and PostgreSQL can bind as an integer


@pytest.mark.parametrize("path", ["/images", "/jobs", "/auth/login-history"])
def test_an_offset_past_any_list_is_a_422_not_a_500(
    client: TestClient, path: str, accounts: AccountFactory
) -> None:
    headers = accounts.logged_in(client, "farreader").headers
    response = client.get(path, params={"offset": TOO_FAR}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "offset"]
    assert client.get(path, params={"offset": 2**31 - 1}, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/users", "q"),
        ("/admin/login-history", "username"),
        ("/admin/audit-log", "action"),
        ("/admin/audit-log", "target_type"),
    ],
)
def test_admin_filters_with_a_nul_are_a_422(
    admin_client: TestClient, path: str, parameter: str
) -> None:
    headers = login_headers(admin_client, ADMIN_USERNAME)
    response = admin_client.get(path, params={parameter: "a\x00b"}, headers=headers)
    assert response.status_code == 422
    assert "control characters" in response.json()["detail"][0]["msg"]


def test_an_api_key_name_with_a_nul_is_a_422(client: TestClient, accounts: AccountFactory) -> None:
    headers = accounts.logged_in(client, "keymaker").headers
    response = client.post("/api-keys", json={"name": "a\x00b"}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "name"]
    assert client.get("/api-keys", headers=headers).json() == []


def _mpo_jpeg() -> bytes:
    """A JPEG with an MPF block (two pictures), as phones write for depth or bursts."""
    buffer = io.BytesIO()
    first = Image.new("RGB", (40, 30), (200, 40, 40))
    second = Image.new("RGB", (40, 30), (40, 40, 200))
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    return buffer.getvalue()


def test_a_jpeg_with_several_pictures_is_a_jpeg(
    client: TestClient, accounts: AccountFactory
) -> None:
    headers = accounts.logged_in(client, "phoneuser").headers
    uploaded = upload_image(client, headers, _mpo_jpeg(), "photo.jpg", "image/jpeg")
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()
    assert (image["format"], image["width"], image["height"]) == ("JPEG", 40, 30)
    thumbnail = client.get(f"/images/{image['id']}/thumbnail", headers=headers)
    assert thumbnail.status_code == 200
    job = process(client, headers, image["id"], [{"op": "invert"}]).json()
    assert job["status"] == "done", job["error"]


def test_a_server_that_started_without_the_database_registers_on_its_first_job(
    client: TestClient,
    accounts: AccountFactory,
) -> None:
    runner: Any = client.app.state.job_runner
    runner.server_id = None  # as when the database was unreachable at start-up
    headers = accounts.logged_in(client, "latecomer").headers
    image_id = upload_image(client, headers).json()["id"]
    job = process(client, headers, image_id, [{"op": "grayscale"}]).json()
    assert job["status"] == "done", job["error"]
    assert runner.server_id is not None
    with app_session(client) as db:
        assert db.get_one(Job, job["id"]).server_id == runner.server_id
