"""The image library over HTTP: uploads, bad uploads, ownership, content, thumbnails, deletion."""

from __future__ import annotations

import io
import os
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import func, select

from api.core.config import Settings
from api.core.db import writes
from api.models import Image
from api.services.images import (
    add_image,
    delete_user_images,
    remove_objects_of_deleted_images,
)
from api.storage import new_key
from tests.support.accounts import AccountFactory, LoggedIn, login_headers
from tests.support.databases import app_session
from tests.support.images import image_bytes, stored_bytes, stored_keys, upload_image


def noise_bytes(image_format: str, size: tuple[int, int] = (64, 48)) -> bytes:
    """Random pixels: they do not compress, so a cut file really misses image data."""
    pixels = np.random.default_rng(7).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buffer = io.BytesIO()
    PILImage.fromarray(pixels, "RGB").save(buffer, image_format)
    return buffer.getvalue()


def png_with_size_claim(data: bytes, width: int, height: int) -> bytes:
    """The PNG `data` with its IHDR rewritten (valid CRC) to claim another size."""
    ihdr_start = 8 + 4  # signature, chunk length
    body = b"IHDR" + struct.pack(">II", width, height) + data[ihdr_start + 12 : ihdr_start + 17]
    return data[:ihdr_start] + body + struct.pack(">I", zlib.crc32(body)) + data[ihdr_start + 21 :]


def damaged_png() -> bytes:
    """A PNG whose compressed pixel data has a few bytes overwritten (its checksum now fails)."""
    data = bytearray(noise_bytes("PNG"))
    start = data.index(b"IDAT") + 40
    data[start : start + 8] = b"\xff" * 8
    return bytes(data)


def decompression_bomb() -> bytes:
    """A real PNG of 10000×10000 one-bit pixels: about 20 KB on disk, 100 million pixels."""
    buffer = io.BytesIO()
    PILImage.new("1", (10_000, 10_000)).save(buffer, "PNG")
    return buffer.getvalue()


def image_rows(client: TestClient) -> int:
    with app_session(client) as db:
        return db.scalar(select(func.count()).select_from(Image)) or 0


@pytest.fixture
def alice(client: TestClient, accounts: AccountFactory) -> LoggedIn:
    return accounts.logged_in(client, "alice")


@pytest.fixture
def bob(client: TestClient, accounts: AccountFactory) -> LoggedIn:
    return accounts.logged_in(client, "bob_b")


# --- uploads --------------------------------------------------------------------------------


def test_image_routes_need_credentials(client: TestClient) -> None:
    for response in (upload_image(client, {}), client.get("/images"), client.get("/jobs")):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"


def test_upload_records_metadata_and_content_returns_the_bytes_as_uploaded(
    client: TestClient, alice: LoggedIn, settings: Settings
) -> None:
    data = image_bytes("PNG", size=(30, 20))
    created = upload_image(client, alice.headers, data, filename="holiday.png")
    assert created.status_code == 201, created.text
    image = created.json()
    assert image["filename"] == "holiday.png"
    assert (image["format"], image["media_type"]) == ("PNG", "image/png")
    assert (image["width"], image["height"], image["size_bytes"]) == (30, 20, len(data))
    assert image["source_image_id"] is None
    assert image["operations"] is None

    content = client.get(f"/images/{image['id']}/content", headers=alice.headers)
    assert content.status_code == 200
    assert content.content == data
    assert content.headers["content-type"] == "image/png"
    assert content.headers["x-content-type-options"] == "nosniff"

    [stored] = stored_keys(client)
    assert stored != "holiday.png"  # a server-made name
    assert stored_bytes(client, stored) == data


@pytest.mark.parametrize(
    ("image_format", "media_type"),
    [
        ("JPEG", "image/jpeg"),
        ("PNG", "image/png"),
        ("WEBP", "image/webp"),
        ("GIF", "image/gif"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_every_supported_format_is_accepted(
    client: TestClient, alice: LoggedIn, image_format: str, media_type: str
) -> None:
    created = upload_image(client, alice.headers, image_bytes(image_format), "x.bin", "x/y")
    assert created.status_code == 201, created.text
    assert (created.json()["format"], created.json()["media_type"]) == (image_format, media_type)
    content = client.get(f"/images/{created.json()['id']}/content", headers=alice.headers)
    assert content.headers["content-type"] == media_type


def test_the_type_is_judged_by_content_not_by_name_or_header(
    client: TestClient, alice: LoggedIn
) -> None:
    jpeg_named_png = upload_image(
        client, alice.headers, image_bytes("JPEG"), "looks.png", "image/png"
    )
    assert jpeg_named_png.status_code == 201
    assert jpeg_named_png.json()["format"] == "JPEG"


@pytest.mark.parametrize(
    ("name", "data", "content_type", "status", "says"),
    [
        ("empty file", b"", "image/png", 422, "empty"),
        ("text named .jpg", b"hello, I am not a picture\n" * 20, "image/jpeg", 415, "supported"),
        ("svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>', "image/svg+xml", 415, "supported"),
        ("truncated JPEG", noise_bytes("JPEG")[:1500], "image/jpeg", 422, "truncated"),
        ("truncated PNG", noise_bytes("PNG")[:4000], "image/png", 422, "truncated"),
        (
            "PNG whose header claims more pixels than it has",
            png_with_size_claim(noise_bytes("PNG", (16, 16)), 64, 64),
            "image/png",
            422,
            "corrupt",
        ),
        ("PNG with damaged pixel data", damaged_png(), "image/png", 422, "corrupt"),
        ("decompression bomb", decompression_bomb(), "image/png", 422, "decompression bomb"),
    ],
)
def test_bad_uploads_are_a_clear_4xx_and_leave_nothing_behind(
    client: TestClient,
    alice: LoggedIn,
    settings: Settings,
    name: str,
    data: bytes,
    content_type: str,
    status: int,
    says: str,
) -> None:
    response = upload_image(client, alice.headers, data, "upload.jpg", content_type)
    assert response.status_code == status, f"{name}: {response.text}"
    assert says in str(response.json()["detail"]), name
    assert stored_keys(client) == []
    assert image_rows(client) == 0


def test_a_422_upload_error_has_fastapis_shape(client: TestClient, alice: LoggedIn) -> None:
    response = upload_image(client, alice.headers, noise_bytes("JPEG")[:1500])
    assert response.status_code == 422
    [error] = response.json()["detail"]
    assert error["loc"] == ["body", "file"]
    assert "truncated" in error["msg"]


def test_a_missing_file_field_or_a_non_multipart_body_is_a_422(
    client: TestClient, alice: LoggedIn, settings: Settings
) -> None:
    wrong_field = upload_image(client, alice.headers, image_bytes(), field="image")
    assert wrong_field.status_code == 422
    assert wrong_field.json()["detail"][0]["loc"] == ["body", "file"]
    assert "Field required" in wrong_field.json()["detail"][0]["msg"]

    as_json = client.post("/images", json={"file": "abc"}, headers=alice.headers)
    assert as_json.status_code == 422
    assert "multipart/form-data" in as_json.json()["detail"][0]["msg"]
    assert stored_keys(client) == []
    assert image_rows(client) == 0


def _multipart(field: str, filename: str, chunks: Iterator[bytes]) -> Iterator[bytes]:
    yield (
        f"--XyZ\r\nContent-Disposition: form-data; name={field}; filename={filename}\r\n"
        "Content-Type: image/png\r\n\r\n"
    ).encode()
    yield from chunks
    yield b"\r\n--XyZ--\r\n"


def test_an_upload_over_the_limit_is_cut_off_with_a_413(
    make_client: Callable[..., Any], settings: Settings, accounts: AccountFactory
) -> None:
    over_limit = image_bytes("PNG") + os.urandom(1024 * 1024)
    with make_client(max_upload_mb=1) as client:
        alice = accounts.logged_in(client, "alice")
        declared = upload_image(client, alice.headers, over_limit)  # with Content-Length
        assert declared.status_code == 413
        assert "1 MB" in declared.json()["detail"]

        # Streamed without a Content-Length: refused once the first byte past the limit arrives.
        streamed = client.post(
            "/images",
            content=_multipart(
                "file",
                "big.png",
                iter([over_limit[i : i + 65536] for i in range(0, len(over_limit), 65536)]),
            ),
            headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=XyZ"},
        )
        assert streamed.status_code == 413
        assert stored_keys(client) == []
        assert image_rows(client) == 0

        at_limit = upload_image(client, alice.headers, image_bytes("PNG", size=(400, 300)))
        assert at_limit.status_code == 201


def test_the_clients_filename_is_metadata_only(
    client: TestClient, alice: LoggedIn, settings: Settings, tmp_path: Path
) -> None:
    for hostile, shown in [
        ("../../../evil.png", "evil.png"),
        ("..\\..\\windows\\evil2.png", "evil2.png"),
        ("/etc/passwd", "passwd"),
        ("..", "upload"),
    ]:
        created = upload_image(client, alice.headers, image_bytes(), filename=hostile)
        assert created.status_code == 201, created.text
        assert created.json()["filename"] == shown
    # Control characters (HTTP clients escape them; a raw body need not).
    raw = client.post(
        "/images",
        content=_multipart("file", '"tab\tand\x00nul.png"', iter([image_bytes()])),
        headers={**alice.headers, "Content-Type": "multipart/form-data; boundary=XyZ"},
    )
    assert raw.status_code == 201, raw.text
    assert raw.json()["filename"] == "tabandnul.png"
    assert len(stored_keys(client)) == 5
    assert not any(path.name.startswith(("evil", "passwd")) for path in tmp_path.rglob("*"))


# --- the library ------------------------------------------------------------------------------


def test_ownership_table(client: TestClient, alice: LoggedIn, bob: LoggedIn) -> None:
    image_id = upload_image(client, alice.headers).json()["id"]
    process = {"operations": [{"op": "invert"}]}
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/images/{image_id}", {}),
        ("GET", f"/images/{image_id}/content", {}),
        ("GET", f"/images/{image_id}/thumbnail", {}),
        ("POST", f"/images/{image_id}/process", {"json": process}),
        ("POST", "/images/process-batch", {"json": {"image_ids": [image_id], **process}}),
        ("DELETE", f"/images/{image_id}", {}),
    ]
    for method, path, extra in attempts:
        response = client.request(method, path, headers=bob.headers, **extra)
        assert response.status_code == 403, (method, path, response.text)
        unknown = path.replace(f"/{image_id}", "/987654")
        if "batch" in path:
            extra = {"json": {"image_ids": [987654], **process}}
        missing = client.request(method, unknown, headers=bob.headers, **extra)
        assert missing.status_code == 404, (method, unknown, missing.text)

    assert client.get("/images", headers=bob.headers).json()["total"] == 0
    assert client.get("/jobs", headers=bob.headers).json()["total"] == 0

    assert client.get("/images", headers=alice.headers).json()["total"] == 1
    for method, path, extra in attempts[:4]:
        response = client.request(method, path, headers=alice.headers, **extra)
        assert response.status_code == 200, (method, path, response.text)
    assert client.delete(f"/images/{image_id}", headers=alice.headers).status_code == 204


def test_lists_are_the_callers_only_newest_first_and_paginated(
    client: TestClient, alice: LoggedIn, bob: LoggedIn
) -> None:
    ids = [upload_image(client, alice.headers).json()["id"] for _ in range(3)]
    upload_image(client, bob.headers)
    first = client.get("/images?limit=2", headers=alice.headers).json()
    assert (first["total"], first["limit"], first["offset"]) == (3, 2, 0)
    assert [item["id"] for item in first["items"]] == [ids[2], ids[1]]
    rest = client.get("/images?limit=2&offset=2", headers=alice.headers).json()
    assert [item["id"] for item in rest["items"]] == [ids[0]]
    assert client.get("/images?limit=101", headers=alice.headers).status_code == 422


def test_thumbnail_applies_the_exif_orientation_and_carries_no_metadata(
    client: TestClient, alice: LoggedIn
) -> None:
    exif = PILImage.Exif()
    exif[0x0112] = 6  # displayed turned a quarter clockwise
    exif[0x8825] = {1: "N"}  # a GPS block
    photo = image_bytes("JPEG", size=(80, 40), exif=exif.tobytes())
    image = upload_image(client, alice.headers, photo, "photo.jpg", "image/jpeg").json()
    assert (image["width"], image["height"]) == (40, 80)  # as displayed

    thumbnail = client.get(f"/images/{image['id']}/thumbnail?size=32", headers=alice.headers)
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert thumbnail.headers["x-content-type-options"] == "nosniff"
    small = PILImage.open(io.BytesIO(thumbnail.content))
    assert small.size == (16, 32)
    assert len(small.getexif()) == 0

    content = client.get(f"/images/{image['id']}/content", headers=alice.headers)
    assert content.content == photo  # the upload itself is returned untouched


def test_thumbnail_size_bounds_and_png_for_transparency(
    client: TestClient, alice: LoggedIn
) -> None:
    image_id = upload_image(
        client, alice.headers, image_bytes("PNG", size=(600, 300), color=(0, 0, 255, 100))
    ).json()["id"]
    default = client.get(f"/images/{image_id}/thumbnail", headers=alice.headers)
    assert default.headers["content-type"] == "image/png"
    assert PILImage.open(io.BytesIO(default.content)).size == (256, 128)
    assert PILImage.open(io.BytesIO(default.content)).mode == "RGBA"
    for size in (31, 513, "big"):
        bad = client.get(f"/images/{image_id}/thumbnail?size={size}", headers=alice.headers)
        assert bad.status_code == 422


def test_content_and_thumbnails_answer_304_while_the_callers_copy_is_current(
    client: TestClient, alice: LoggedIn, bob: LoggedIn
) -> None:
    data = image_bytes("PNG", size=(300, 200))
    image_id = upload_image(client, alice.headers, data).json()["id"]
    content_path, thumbnail_path = f"/images/{image_id}/content", f"/images/{image_id}/thumbnail"
    first = client.get(content_path, headers=alice.headers)
    tag = first.headers["etag"]
    assert tag.startswith('"') and tag.endswith('"')
    with app_session(client) as db:
        assert db.get_one(Image, image_id).storage_key not in tag  # keys stay out of answers

    for if_none_match in (tag, f"W/{tag}", f'"something-else", {tag}', "*"):
        again = client.get(content_path, headers={**alice.headers, "If-None-Match": if_none_match})
        assert again.status_code == 304, if_none_match
        assert again.content == b""
        assert again.headers["etag"] == tag
        assert again.headers["cache-control"] == "private, no-cache"
    stale = client.get(content_path, headers={**alice.headers, "If-None-Match": '"old"'})
    assert (stale.status_code, stale.content) == (200, data)

    small = client.get(f"{thumbnail_path}?size=64", headers=alice.headers)
    large = client.get(f"{thumbnail_path}?size=128", headers=alice.headers)
    small_tag, large_tag = small.headers["etag"], large.headers["etag"]
    assert len({tag, small_tag, large_tag}) == 3
    current = {**alice.headers, "If-None-Match": small_tag}
    assert client.get(f"{thumbnail_path}?size=64", headers=current).status_code == 304
    rendered = client.get(f"{thumbnail_path}?size=128", headers=current)
    assert (rendered.status_code, rendered.content) == (200, large.content)

    # A revalidation is a request like any other: credentials and ownership first.
    for path in (content_path, f"{thumbnail_path}?size=64"):
        assert client.get(path, headers={**bob.headers, "If-None-Match": "*"}).status_code == 403
        assert client.get(path, headers={"If-None-Match": "*"}).status_code == 401

    # Another image, even one given the same id (SQLite reuses the newest row's), has other tags.
    assert client.delete(f"/images/{image_id}", headers=alice.headers).status_code == 204
    other = image_bytes("PNG", size=(300, 200), color=(10, 200, 10))
    other_id = upload_image(client, alice.headers, other).json()["id"]
    replaced = client.get(
        f"/images/{other_id}/content", headers={**alice.headers, "If-None-Match": tag}
    )
    assert (replaced.status_code, replaced.content) == (200, other)


def test_delete_removes_row_and_file(
    client: TestClient, alice: LoggedIn, settings: Settings
) -> None:
    kept = upload_image(client, alice.headers).json()["id"]
    image_id = upload_image(client, alice.headers).json()["id"]
    assert len(stored_keys(client)) == 2
    assert client.delete(f"/images/{image_id}", headers=alice.headers).status_code == 204
    assert client.get(f"/images/{image_id}", headers=alice.headers).status_code == 404
    assert client.delete(f"/images/{image_id}", headers=alice.headers).status_code == 404
    assert len(stored_keys(client)) == 1
    assert client.get(f"/images/{kept}/content", headers=alice.headers).status_code == 200


def test_delete_user_images_deletes_rows_in_the_callers_transaction_and_leaves_the_files(
    client: TestClient, alice: LoggedIn, bob: LoggedIn, settings: Settings
) -> None:
    for _ in range(2):
        upload_image(client, alice.headers)
    upload_image(client, bob.headers)
    with app_session(client) as db:
        assert len(delete_user_images(db, alice.user.id)) == 2
        db.rollback()
    assert client.get("/images", headers=alice.headers).json()["total"] == 2

    with app_session(client) as db:
        assert len(delete_user_images(db, alice.user.id)) == 2
        db.commit()
    assert client.get("/images", headers=alice.headers).json()["total"] == 0
    assert client.get("/images", headers=bob.headers).json()["total"] == 1
    assert len(stored_keys(client)) == 3  # the files are the user.deleted handler's part


def test_only_objects_no_row_names_are_removed_for_a_deleted_account(
    client: TestClient, alice: LoggedIn, bob: LoggedIn, settings: Settings
) -> None:
    upload_image(client, alice.headers)
    upload_image(client, bob.headers)
    with app_session(client) as db:
        bobs_key = db.scalars(select(Image.storage_key).where(Image.owner_id == bob.user.id)).one()
        keys = delete_user_images(db, alice.user.id)
        db.commit()
        storage = client.app.state.storage
        # bob's key smuggled in (say, a forged message): his file stays
        assert remove_objects_of_deleted_images(db, storage, [*keys, bobs_key]) == 1
        assert remove_objects_of_deleted_images(db, storage, keys) == 1  # again: harmless
    assert stored_keys(client) == [bobs_key]


def test_an_added_image_keeps_its_object_only_if_its_unit_of_work_commits(
    client: TestClient, alice: LoggedIn
) -> None:
    storage = client.app.state.storage
    dropped, kept = new_key("png"), new_key("png")
    for key in (dropped, kept):
        with storage.writing(key) as path:
            path.write_bytes(image_bytes())

    def add(db: Any, key: str, filename: str) -> None:
        add_image(
            db,
            storage,
            owner_id=alice.user.id,
            key=key,
            filename=filename,
            image_format="PNG",
            width=1,
            height=1,
            size_bytes=1,
        )

    with app_session(client) as db:
        with pytest.raises(RuntimeError), writes(db):
            add(db, dropped, "dropped.png")
            raise RuntimeError("the unit fails after its row was added")
        with writes(db):
            add(db, kept, "kept.png")
    assert not storage.exists(dropped)
    assert storage.exists(kept)
    listed = client.get("/images", headers=alice.headers).json()["items"]
    assert [image["filename"] for image in listed] == ["kept.png"]


def test_ids_out_of_range_are_a_422(client: TestClient, alice: LoggedIn) -> None:
    for path in ("/images/0", "/images/99999999999", "/jobs/99999999999"):
        assert client.get(path, headers=alice.headers).status_code == 422


# --- start-up sweep ---------------------------------------------------------------------------


def _age(path: Path, seconds: float) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def _put_object(client: TestClient, key: str) -> None:
    with client.app.state.storage.writing(key) as path:
        path.write_bytes(image_bytes())


def test_the_startup_sweep_removes_orphans_and_marks_missing_files(
    make_client: Callable[..., Any], settings: Settings, accounts: AccountFactory
) -> None:
    orphan = "a" * 32 + ".png"
    with make_client() as client:
        alice = accounts.logged_in(client, "alice")
        lost, kept = (upload_image(client, alice.headers).json()["id"] for _ in range(2))
        with app_session(client) as db:
            lost_key = db.get(Image, lost).storage_key
        client.app.state.storage.delete(lost_key)
        _put_object(client, orphan)
    stale_scratch = settings.storage_dir / ".tmp" / "upload-crashed.part"
    fresh_scratch = settings.storage_dir / ".tmp" / "upload-arriving.part"
    for path in (stale_scratch, fresh_scratch):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(image_bytes())
    _age(stale_scratch, 2 * 3600)

    with make_client() as client:
        alice_headers = login_headers(client, "alice")
        missing = client.get(f"/images/{lost}", headers=alice_headers).json()
        assert missing["file_missing_at"] is not None
        assert client.get(f"/images/{lost}/content", headers=alice_headers).status_code == 404
        revalidation = {**alice_headers, "If-None-Match": "*"}
        for what in ("content", "thumbnail"):  # never 304 for bytes that are gone
            assert client.get(f"/images/{lost}/{what}", headers=revalidation).status_code == 404
        assert (
            client.get(f"/images/{kept}", headers=alice_headers).json()["file_missing_at"] is None
        )
        assert client.get(f"/images/{kept}/content", headers=alice_headers).status_code == 200
        assert client.delete(f"/images/{lost}", headers=alice_headers).status_code == 204
        # Younger than STORAGE_ORPHAN_GRACE_S: perhaps another process's upload in flight.
        assert client.app.state.storage.exists(orphan)
    assert not stale_scratch.exists()
    assert fresh_scratch.exists()

    with make_client(storage_orphan_grace_s=0) as client:
        assert orphan not in stored_keys(client)
        assert len(stored_keys(client)) == 1  # the kept image's
    assert not fresh_scratch.exists()


def test_openapi_documents_the_upload_and_the_statuses(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    upload = paths["/images"]["post"]
    schema = upload["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["required"] == ["file"]
    assert {"201", "401", "413", "415", "422"} <= set(upload["responses"])
    process = paths["/images/{image_id}/process"]["post"]["responses"]
    assert {"200", "202", "401", "403", "404", "422", "503"} <= set(process)
    batch = paths["/images/process-batch"]["post"]["responses"]
    assert {"202", "403", "404", "422", "503"} <= set(batch)
    content = paths["/images/{image_id}/content"]["get"]["responses"]
    assert {"200", "304", "401", "403", "404"} <= set(content)
    thumbnail = paths["/images/{image_id}/thumbnail"]["get"]
    assert {"200", "304", "401", "403", "404", "422"} <= set(thumbnail["responses"])
    assert {"if-none-match", "If-None-Match"} & {p["name"] for p in thumbnail["parameters"]}
