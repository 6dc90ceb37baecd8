"""Conditional GET for image bytes: an entity tag per representation, and 304 when the
caller's copy is current.

An image's stored bytes never change (a key is written once), so its storage key names them,
and a thumbnail is named by that key, its size and the thumbnail rendering's version (ids may
be reused once the newest row is deleted; keys never are). A tag is a digest of those parts:
storage keys stay out of answers. The answer stays `private, no-cache`: every revalidation is
authenticated and checked for ownership first; only reading or rendering the bytes is saved.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import Header, Response, status

IfNoneMatch = Annotated[
    str | None,
    Header(
        alias="If-None-Match",
        description="An `ETag` from an earlier answer: 304 (no body) while it is still current.",
    ),
]

NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {"description": "Not modified: the `If-None-Match` tag names the current bytes"}
}


def entity_tag(*parts: str | int) -> str:
    named = ".".join(str(part) for part in parts).encode()
    return '"' + hashlib.blake2b(named, digest_size=16).hexdigest() + '"'


def is_current(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 §13.1.2: a weak comparison against each listed tag; `*` matches any."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    return any(tag.strip().removeprefix("W/") == etag for tag in if_none_match.split(","))


def not_modified(etag: str, headers: dict[str, str]) -> Response:
    return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={**headers, "ETag": etag})
