"""Image thumbnails and tiles. Bytes come through the API client (the browser has no token to
fetch them itself) and are cached per session: images never change."""

from __future__ import annotations

from typing import Any

import streamlit as st

from frontend.api_client import ApiError, Download
from frontend.components.formatting import human_size
from frontend.navigation import IMAGES
from frontend.session import api_client, image_cache

THUMBNAIL_SIZE = 256
IMAGE_QUERY_PARAM = "image"


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
