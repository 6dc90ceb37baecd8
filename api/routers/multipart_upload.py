"""Streams one file field of a multipart/form-data body to disk, cut off past a size limit.

Starlette's form parser spools every file part to a temporary file of its own before the
endpoint runs, with no size limit: a 1 GB body would be read (and written) in full before it
could be refused. Here the body is parsed as it arrives: the wanted part goes straight to a
file (written from a worker thread, in blocks, so the event loop never waits on the disk),
every other part is dropped, and reading stops at the first byte over the limit.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from api.services.errors import PayloadTooLarge, RuleViolation

# Room for part headers, boundaries and small fields around the file itself.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
WRITE_BLOCK_BYTES = 1024 * 1024


@dataclass(frozen=True, slots=True)
class ReceivedFile:
    path: Path
    filename: str | None
    size: int


def _too_large(limit: int) -> PayloadTooLarge:
    megabytes = limit / (1024 * 1024)
    return PayloadTooLarge(f"The file is larger than the upload limit of {megabytes:g} MB")


class _FieldCollector:
    """python-multipart callbacks that keep only the bytes of the wanted field."""

    def __init__(self, field_name: str, max_bytes: int) -> None:
        self.field_name = field_name
        self.max_bytes = max_bytes
        self.found = False
        self.complete = False
        self.filename: str | None = None
        self.size = 0
        self.pending = bytearray()
        self._in_target = False
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self.on_part_begin,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
        }

    def on_part_begin(self) -> None:
        self._in_target = False
        self._disposition = b""

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if self._header_name.lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name == self.field_name and not self.found:
            self.found = self._in_target = True
            raw_filename = options.get(b"filename")
            if raw_filename is not None:
                self.filename = raw_filename.decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if not self._in_target:
            return
        self.size += end - start
        if self.size > self.max_bytes:
            raise _too_large(self.max_bytes)
        self.pending += data[start:end]

    def on_part_end(self) -> None:
        if self._in_target:
            self.complete = True
            self._in_target = False


async def receive_file_field(
    stream: AsyncIterator[bytes],
    *,
    content_type: str | None,
    content_length: str | None,
    field_name: str,
    destination: Path,
    max_bytes: int,
) -> ReceivedFile:
    """Writes the field's bytes to `destination` (removed again on any error)."""
    media_type, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise RuleViolation(
            field_name, f"Send the image as multipart/form-data with a field named {field_name!r}"
        )
    max_body = max_bytes + MULTIPART_OVERHEAD_BYTES
    if content_length is not None and content_length.isdigit() and int(content_length) > max_body:
        raise _too_large(max_bytes)

    collector = _FieldCollector(field_name, max_bytes)
    try:
        parser = MultipartParser(boundary, collector.callbacks())  # type: ignore[arg-type]
    except FormParserError:
        raise RuleViolation(field_name, "The multipart boundary is invalid") from None

    body_size = 0
    file: BinaryIO = destination.open("wb")
    try:
        async for chunk in _until_disconnect(stream, field_name):
            body_size += len(chunk)
            if body_size > max_body:
                raise _too_large(max_bytes)
            try:
                parser.write(chunk)
            except FormParserError:
                raise RuleViolation(field_name, "The multipart body is malformed") from None
            if len(collector.pending) >= WRITE_BLOCK_BYTES:
                await _flush(file, collector.pending)
        await _flush(file, collector.pending)
        parser.finalize()
        if not collector.found:
            raise RuleViolation(
                field_name, f"Field required: send the image in the multipart field {field_name!r}"
            )
        if not collector.complete:
            raise RuleViolation(field_name, "The upload ended before the file was complete")
    except BaseException:
        file.close()
        destination.unlink(missing_ok=True)
        raise
    file.close()
    return ReceivedFile(destination, collector.filename, collector.size)


async def _until_disconnect(stream: AsyncIterator[bytes], field_name: str) -> AsyncIterator[bytes]:
    """The body's chunks; a client that goes away mid-upload is a 4xx, not a server error."""
    try:
        async for chunk in stream:
            yield chunk
    except ClientDisconnect:
        raise RuleViolation(field_name, "The upload was interrupted") from None


async def _flush(file: BinaryIO, pending: bytearray) -> None:
    if pending:
        block = bytes(pending)
        pending.clear()
        await run_in_threadpool(file.write, block)
