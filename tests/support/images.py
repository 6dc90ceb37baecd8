"""Images in tests: real encoded bytes, uploads, processing requests, waiting for jobs."""

from __future__ import annotations

import io
import time
from typing import Any

from PIL import Image

# Seconds of work from a tiny file: a 4000×4000 canvas blurred again and again.
SLOW = [{"op": "resize", "width": 4000, "height": 4000}, *[{"op": "blur", "radius": 50}] * 9]
POLL_DEADLINE_S = 120


def image_bytes(
    image_format: str = "PNG",
    size: tuple[int, int] = (24, 16),
    color: tuple[int, ...] = (200, 80, 40),
    **save_options: Any,
) -> bytes:
    """A small real image encoded as `image_format` (PNG, JPEG, WEBP, GIF, BMP, TIFF...)."""
    buffer = io.BytesIO()
    Image.new("RGBA" if len(color) == 4 else "RGB", size, color).save(
        buffer, image_format, **save_options
    )
    return buffer.getvalue()


def upload_image(
    client: Any,
    headers: dict[str, str],
    data: bytes | None = None,
    filename: str = "picture.png",
    content_type: str = "image/png",
    field: str = "file",
) -> Any:
    """POST /images with `data` (a small PNG by default) as a multipart file; the response."""
    files = {field: (filename, image_bytes() if data is None else data, content_type)}
    return client.post("/images", files=files, headers=headers)


def process(
    client: Any, headers: dict[str, str], image_id: int, operations: list[Any], **body: Any
) -> Any:
    return client.post(
        f"/images/{image_id}/process", json={"operations": operations, **body}, headers=headers
    )


def wait_for_job(
    client: Any, headers: dict[str, str], job_id: int, statuses: set[str]
) -> dict[str, Any]:
    """Polls the job until its status is one of `statuses` (not a timing assertion: the
    deadline only keeps a broken build from hanging)."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def stored_keys(client: Any) -> list[str]:
    """The keys of every object in a TestClient app's storage, whichever the backend. With
    S3 it also checks the rule that no image file is kept under STORAGE_DIR."""
    settings = client.app.state.settings
    if settings.storage_backend == "s3" and settings.storage_dir.exists():
        kept = [path for path in settings.storage_dir.rglob("*") if path.is_file()]
        assert kept == [], f"files left under STORAGE_DIR: {kept}"
    return sorted(stored.key for stored in client.app.state.storage.stored_objects())


def stored_bytes(client: Any, key: str) -> bytes:
    stream = client.app.state.storage.open(key)
    return b"".join(stream.chunks())
