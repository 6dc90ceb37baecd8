"""Image objects in an S3-compatible bucket (AWS S3, SeaweedFS, Garage, Ceph).

Uploads and results are complete local files first (the upload parser and the workers write
scratch files), then one `upload_file` (multipart past 8 MB): an object exists only once whole,
so it is complete before its row commits. Reads stream the response body in chunks; decoders
that seek get a scratch copy for the length of a block. Scratch files live under
`STORAGE_DIR/.tmp` and are removed when their block ends; nothing else is kept locally.

The boto3 client is made once per process and bucket (clients are thread-safe, and making one
costs tens of milliseconds); a pickled S3Storage (sent to a pool worker) carries only its
settings. An unreachable store, or one refusing our credentials, is `StorageUnavailable`.
"""

from __future__ import annotations

import mimetypes
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from api.storage.base import (
    KEY_PATTERN,
    ObjectStream,
    Storage,
    StorageUnavailable,
    StoredObject,
    checked_key,
)
from api.storage.scratch import ScratchDir

CONNECT_TIMEOUT_S = 5
READ_TIMEOUT_S = 60
MAX_ATTEMPTS = 3
_MISSING_CODES = {"404", "NoSuchKey", "NotFound"}


@dataclass(frozen=True, slots=True)
class S3Location:
    endpoint_url: str | None
    bucket: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    region: str = "us-east-1"


_clients: dict[tuple[int, S3Location], Any] = {}
_clients_lock = threading.Lock()


def _client(location: S3Location) -> Any:
    """This process's client for `location` (a forked child makes its own)."""
    cache_key = (os.getpid(), location)
    with _clients_lock:
        client = _clients.get(cache_key)
        if client is None:
            client = boto3.session.Session().client(
                "s3",
                endpoint_url=location.endpoint_url,
                aws_access_key_id=location.access_key_id,
                aws_secret_access_key=location.secret_access_key,
                region_name=location.region,
                config=Config(
                    s3={"addressing_style": "path"},  # SeaweedFS, Garage, Ceph: no bucket DNS
                    connect_timeout=CONNECT_TIMEOUT_S,
                    read_timeout=READ_TIMEOUT_S,
                    retries={"max_attempts": MAX_ATTEMPTS, "mode": "standard"},
                ),
            )
            _clients[cache_key] = client
        return client


def _is_missing(exc: ClientError) -> bool:
    error = exc.response.get("Error", {})
    return str(error.get("Code")) in _MISSING_CODES


@contextmanager
def _translated_errors(key: str) -> Iterator[None]:
    """A missing object is FileNotFoundError; any other failure is StorageUnavailable."""
    try:
        yield
    except ClientError as exc:
        if _is_missing(exc):
            raise FileNotFoundError(key) from None
        raise _unavailable(exc) from None
    except BotoCoreError as exc:
        raise _unavailable(exc) from None


def _unavailable(exc: Exception) -> StorageUnavailable:
    # The message names the failure's kind only: botocore's may quote the endpoint and bucket.
    return StorageUnavailable(f"The image store is unreachable ({type(exc).__name__})")


class S3Storage(Storage):
    def __init__(self, location: S3Location, scratch_dir: Path) -> None:
        self.location = location
        self.bucket = location.bucket
        self._scratch = ScratchDir(scratch_dir)

    @property
    def _s3(self) -> Any:
        return _client(self.location)

    def put_file(self, path: Path, key: str) -> None:
        content_type = mimetypes.guess_type(checked_key(key))[0] or "application/octet-stream"
        try:
            self._s3.upload_file(
                str(path), self.bucket, key, ExtraArgs={"ContentType": content_type}
            )
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from None
        path.unlink(missing_ok=True)

    @contextmanager
    def writing(self, key: str) -> Iterator[Path]:
        checked_key(key)
        scratch = self._scratch.new_path("result")
        try:
            yield scratch
            self.put_file(scratch, key)
        finally:
            scratch.unlink(missing_ok=True)

    def open(self, key: str) -> ObjectStream:
        with _translated_errors(key):
            response = self._s3.get_object(Bucket=self.bucket, Key=checked_key(key))
        return ObjectStream(response["Body"], int(response["ContentLength"]))

    @contextmanager
    def local_file(self, key: str) -> Iterator[Path]:
        scratch = self._scratch.new_path("download")
        try:
            with _translated_errors(key):
                self._s3.download_file(self.bucket, checked_key(key), str(scratch))
            yield scratch
        finally:
            scratch.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        try:
            with _translated_errors(key):
                self._s3.head_object(Bucket=self.bucket, Key=checked_key(key))
        except FileNotFoundError:
            return False
        return True

    def delete(self, key: str) -> None:
        try:
            self._s3.delete_object(Bucket=self.bucket, Key=checked_key(key))
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from None

    def stored_objects(self) -> Iterator[StoredObject]:
        try:
            pages = self._s3.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
            for page in pages:
                for item in page.get("Contents", []):
                    if KEY_PATTERN.match(item["Key"]):
                        yield StoredObject(item["Key"], item["LastModified"].timestamp())
        except (BotoCoreError, ClientError) as exc:
            raise _unavailable(exc) from None

    def ensure_bucket(self) -> None:
        """Creates the bucket unless it exists (compose's SeaweedFS starts empty)."""
        try:
            with _translated_errors(self.bucket):
                self._s3.head_bucket(Bucket=self.bucket)
            return
        except FileNotFoundError:
            pass
        try:
            with _translated_errors(self.bucket):
                self._s3.create_bucket(Bucket=self.bucket)
        except StorageUnavailable:
            if not self._bucket_exists_now():
                raise

    def _bucket_exists_now(self) -> bool:
        """Another process may have made it meanwhile."""
        try:
            with _translated_errors(self.bucket):
                self._s3.head_bucket(Bucket=self.bucket)
        except FileNotFoundError:
            return False
        return True

    def warm_up(self) -> None:
        _client(self.location)

    def scratch_path(self, purpose: str) -> Path:
        return self._scratch.new_path(purpose)

    def remove_stale_scratch_files(self, older_than_s: float) -> int:
        return self._scratch.remove_stale(older_than_s)

    def remove_scratch_files_of(self, pid: int) -> int:
        return self._scratch.remove_of_process(pid)

    def remove_scratch_files_of_dead_processes(self) -> int:
        return self._scratch.remove_of_dead_processes()
