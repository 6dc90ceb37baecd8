"""Reading and writing image files; shared by the server (uploads, thumbnails) and the workers.

Everything written here (thumbnails, processing results) carries no EXIF, XMP or text
metadata — no GPS position leaves with a derived image — only the colour profile, so colours
stay right. The orientation EXIF asked for is applied to the pixels first.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import IO

from PIL import ExifTags, Image, ImageOps

from api.processing.operations import Size, has_alpha, normalize_mode

SUPPORTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")
EXTENSIONS = {
    "JPEG": "jpg",
    "PNG": "png",
    "WEBP": "webp",
    "GIF": "gif",
    "BMP": "bmp",
    "TIFF": "tiff",
}
MEDIA_TYPES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "BMP": "image/bmp",
    "TIFF": "image/tiff",
}
# EXIF orientations 5-8 turn the picture a quarter: width and height swap when applied.
_QUARTER_TURN_ORIENTATIONS = {5, 6, 7, 8}
JPEG_QUALITY = 90


def open_image(path: Path | str) -> Image.Image:
    """Opens a file as one of the supported formats, judged by its content only."""
    return Image.open(path, formats=SUPPORTED_FORMATS)


def displayed_size(image: Image.Image) -> Size:
    """Width and height as shown, i.e. with the EXIF orientation applied."""
    orientation = image.getexif().get(ExifTags.Base.Orientation, 1)
    width, height = image.size
    return (height, width) if orientation in _QUARTER_TURN_ORIENTATIONS else (width, height)


def load_oriented(image: Image.Image) -> Image.Image:
    """The decoded pixels, turned as the EXIF orientation says."""
    oriented = ImageOps.exif_transpose(image)
    oriented.load()
    return oriented


def result_format(source_format: str) -> str:
    """Processing results keep JPEG and WebP; every other source becomes a lossless PNG."""
    return source_format if source_format in ("JPEG", "WEBP") else "PNG"


def thumbnail_format(image: Image.Image, source_format: str) -> str:
    return "PNG" if has_alpha(image) or source_format in ("PNG", "GIF") else "JPEG"


def save_clean(image: Image.Image, target: IO[bytes] | Path, image_format: str) -> None:
    """Encodes `image` as `image_format` with no metadata but its colour profile."""
    icc_profile = image.info.get("icc_profile")
    image = normalize_mode(image)
    if image_format == "JPEG" and image.mode not in ("RGB", "L"):
        image = image.convert("RGB" if image.mode == "RGBA" else "L")
    params: dict[str, object] = {}
    if icc_profile:
        params["icc_profile"] = icc_profile
    if image_format in ("JPEG", "WEBP"):
        params["quality"] = JPEG_QUALITY
    clean = image.copy()
    clean.info.clear()
    clean.save(target, format=image_format, **params)


# Part of every thumbnail's entity tag: change it when a change here changes the bytes, so that
# callers' cached thumbnails are not taken as current.
THUMBNAIL_RENDITION = "t1"


def make_thumbnail(path: Path, size: int) -> tuple[bytes, str]:
    """A thumbnail at most `size` pixels on its longer side; returns bytes and media type."""
    with open_image(path) as source:
        source_format = source.format or "PNG"
        # JPEG can decode at 1/2..1/8 scale straight away: much less work for big photos.
        source.draft("RGB", (size, size))
        image = normalize_mode(load_oriented(source))
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    image_format = thumbnail_format(image, source_format)
    buffer = io.BytesIO()
    save_clean(image, buffer, image_format)
    return buffer.getvalue(), MEDIA_TYPES[image_format]
