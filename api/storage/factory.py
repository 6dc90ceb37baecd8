"""The one place that picks the storage backend from settings (built once, in `create_app`)."""

from __future__ import annotations

from api.core.config import Settings
from api.storage.base import Storage
from api.storage.local import SCRATCH_DIR_NAME, LocalStorage
from api.storage.s3 import S3Location, S3Storage


def storage_from_settings(settings: Settings) -> Storage:
    if settings.storage_backend == "s3":
        assert settings.s3_bucket and settings.s3_access_key_id and settings.s3_secret_access_key
        location = S3Location(
            endpoint_url=settings.s3_endpoint_url,
            bucket=settings.s3_bucket,
            access_key_id=settings.s3_access_key_id,
            secret_access_key=settings.s3_secret_access_key.get_secret_value(),
            region=settings.s3_region,
        )
        return S3Storage(location, settings.storage_dir / SCRATCH_DIR_NAME)
    return LocalStorage(settings.storage_dir)
