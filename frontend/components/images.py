"""Image thumbnails and tiles. Bytes come through the API client (the browser has no token to
fetch them itself) and are cached per session: images never change."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from frontend.api_client import ApiError, Download
from frontend.auth.session import api_client
from frontend.components.formatting import human_size
from frontend.sitemap import IMAGES

THUMBNAIL_SIZE = 256
IMAGE_QUERY_PARAM = "image"
IMAGE_CACHE_KEY = "image_cache"
IMAGE_CACHE_SIZE = 96

T = TypeVar("T")


class ImageCache:
    """Image bytes this session already fetched. Images never change (a processing result is a
    new image), so entries stay valid; the size bound keeps memory in check. It lives in
    `st.session_state`, so it goes with the rest of a user's data at logout."""

    def __init__(self, max_entries: int = IMAGE_CACHE_SIZE) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def get(self, key: tuple[Any, ...], fetch: Callable[[], T]) -> T:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = fetch()
        self._entries[key] = value
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return value

    def forget(self, image_id: int) -> None:
        for key in [k for k in self._entries if k[0] == image_id]:
            del self._entries[key]


def image_cache() -> ImageCache:
    if IMAGE_CACHE_KEY not in st.session_state:
        st.session_state[IMAGE_CACHE_KEY] = ImageCache()
    return st.session_state[IMAGE_CACHE_KEY]


def thumbnail(image_id: int, size: int = THUMBNAIL_SIZE) -> bytes:
    return image_cache().get(
        (image_id, "thumbnail", size), lambda: api_client().thumbnail(image_id, size)
    )


def content(image_id: int) -> Download:
    return image_cache().get((image_id, "content"), lambda: api_client().image_content(image_id))


def show_thumbnail(image_id: int, size: int = THUMBNAIL_SIZE, caption: str | None = None) -> None:
    try:
        st.image(thumbnail(image_id, size), caption=caption, width="stretch")
    except ApiError as error:
        if error.status in (403, 404):
            st.caption(":material/broken_image: not available")
        else:
            raise


def open_link(image_id: int, label: str = "Open", icon: str = ":material/open_in_new:") -> None:
    st.page_link(IMAGES, label=label, icon=icon, query_params={IMAGE_QUERY_PARAM: str(image_id)})


def image_tile(image: dict[str, Any]) -> None:
    """A thumbnail with its name, size and a link to the image's page."""
    show_thumbnail(image["id"])
    badge = " · result" if image.get("source_image_id") else ""
    st.caption(
        f"**{image['filename']}**  \n{image['width']}×{image['height']} · "
        f"{human_size(image['size_bytes'])}{badge}"
    )
    open_link(image["id"])
