"""The image operations: pure functions on Pillow images, each with a declared parameter schema.

The schemas (Pydantic models, one per `op`) are what the API validates a pipeline against
before anything is queued, and what a worker re-validates before running it. Each model
knows the function it applies and how it changes the image size, so a pipeline whose result
would be too large is refused up front as well.

Colour operations work on the colour channels and leave an alpha channel as it was;
geometric ones (resize, rotate, flip) move the alpha channel with the pixels.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Annotated, Any, Literal

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter, ImageOps
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

MAX_OPERATIONS = 10
MAX_DIMENSION = 8000

Size = tuple[int, int]

# Rows of the classic sepia matrix: output R, G, B from input R, G, B.
SEPIA_MATRIX = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)


# --- helpers ------------------------------------------------------------------------------


def normalize_mode(image: Image.Image) -> Image.Image:
    """RGB, RGBA, L or LA: the modes every operation accepts (palette, CMYK, 16-bit... are
    converted; transparency becomes an alpha channel)."""
    if image.mode in ("RGB", "RGBA", "L", "LA"):
        return image
    if image.mode.startswith(("I", "F")):
        return _to_eight_bits(image)
    has_alpha = image.mode in ("PA", "RGBa", "La") or "transparency" in image.info
    if image.mode == "1" and not has_alpha:
        return image.convert("L")
    return image.convert("RGBA" if has_alpha else "RGB")


def _to_eight_bits(image: Image.Image) -> Image.Image:
    """16-bit, 32-bit and float greyscale scaled to 0..255 (Pillow's own conversion clips,
    which turns most 16-bit pictures white)."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith("F"):
        top = 1.0 if values.size and values.max() <= 1.0 else 255.0
    else:
        top = 65535.0 if values.size and values.max() > 255 else 255.0
    return Image.fromarray(np.clip(values * (255.0 / top), 0, 255).round().astype(np.uint8), "L")


def has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA")


def _on_colour(image: Image.Image, function: Callable[[Image.Image], Image.Image]) -> Image.Image:
    """Applies a size-preserving `function` to the colour channels, keeping alpha untouched."""
    if not has_alpha(image):
        return function(image)
    alpha = image.getchannel("A")
    colour = function(image.convert("RGB" if image.mode == "RGBA" else "L"))
    result = colour.convert("RGBA" if colour.mode == "RGB" else "LA")
    result.putalpha(alpha)
    return result


def _lookup_table(function: Callable[[int], int]) -> list[int]:
    return [function(value) for value in range(256)]


# --- the operations (pure functions) ------------------------------------------------------


def grayscale(image: Image.Image) -> Image.Image:
    return _on_colour(image, lambda colour: colour.convert("L"))


def blur(image: Image.Image, radius: float) -> Image.Image:
    return _on_colour(image, lambda colour: colour.filter(ImageFilter.GaussianBlur(radius)))


def sharpen(image: Image.Image) -> Image.Image:
    return _on_colour(image, lambda colour: colour.filter(ImageFilter.SHARPEN))


def edges(image: Image.Image) -> Image.Image:
    return _on_colour(image, lambda colour: colour.filter(ImageFilter.FIND_EDGES))


def resize(image: Image.Image, width: int | None, height: int | None) -> Image.Image:
    return image.resize(resized_size(image.size, width, height), Image.Resampling.LANCZOS)


def rotate(image: Image.Image, angle: float) -> Image.Image:
    """Counter-clockwise by `angle` degrees; the canvas grows to keep every pixel."""
    return image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)


def flip(image: Image.Image, direction: Literal["horizontal", "vertical"]) -> Image.Image:
    if direction == "horizontal":
        return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image.transpose(Image.Transpose.FLIP_TOP_BOTTOM)


def brightness(image: Image.Image, factor: float) -> Image.Image:
    return _on_colour(image, lambda colour: ImageEnhance.Brightness(colour).enhance(factor))


def contrast(image: Image.Image, factor: float) -> Image.Image:
    return _on_colour(image, lambda colour: ImageEnhance.Contrast(colour).enhance(factor))


def _sepia_colour(colour: Image.Image) -> Image.Image:
    pixels = np.asarray(colour.convert("RGB"), dtype=np.float32)
    toned = pixels @ SEPIA_MATRIX.T
    return Image.fromarray(np.clip(toned, 0, 255).astype(np.uint8), "RGB")


def sepia(image: Image.Image) -> Image.Image:
    return _on_colour(image, _sepia_colour)


def invert(image: Image.Image) -> Image.Image:
    return _on_colour(image, ImageOps.invert)


def threshold(image: Image.Image, level: int) -> Image.Image:
    """Black and white: pixels brighter than `level` become 255, the rest 0."""
    table = _lookup_table(lambda value: 255 if value > level else 0)
    return _on_colour(image, lambda colour: colour.convert("L").point(table))


# --- sizes --------------------------------------------------------------------------------


def resized_size(size: Size, width: int | None, height: int | None) -> Size:
    """The asked size; a missing side keeps the aspect ratio."""
    source_width, source_height = size
    if width is not None and height is not None:
        return width, height
    if width is not None:
        return width, max(1, round(source_height * width / source_width))
    if height is not None:
        return max(1, round(source_width * height / source_height)), height
    raise ValueError("resize needs a width or a height")


def rotated_size(size: Size, angle: float) -> Size:
    """The canvas `Image.rotate(angle, expand=True)` makes (the same arithmetic as Pillow)."""
    width, height = size
    angle = angle % 360.0
    if angle in (0, 180):
        return size
    if angle in (90, 270):
        return height, width
    radians = -math.radians(angle)
    a, b = round(math.cos(radians), 15), round(math.sin(radians), 15)
    d, e = -b, a
    centre_x, centre_y = width / 2, height / 2
    c = a * -centre_x + b * -centre_y + centre_x
    f = d * -centre_x + e * -centre_y + centre_y
    xs = [a * x + b * y + c for x, y in ((0, 0), (width, 0), (width, height), (0, height))]
    ys = [d * x + e * y + f for x, y in ((0, 0), (width, 0), (width, height), (0, height))]
    return (
        math.ceil(max(xs)) - math.floor(min(xs)),
        math.ceil(max(ys)) - math.floor(min(ys)),
    )


# --- parameter schemas ----------------------------------------------------------------------


class _Operation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    def apply(self, image: Image.Image) -> Image.Image:
        raise NotImplementedError

    def output_size(self, size: Size) -> Size:
        return size


class Grayscale(_Operation):
    op: Literal["grayscale"]

    def apply(self, image: Image.Image) -> Image.Image:
        return grayscale(image)


class Blur(_Operation):
    op: Literal["blur"]
    radius: float = Field(ge=0.1, le=50, description="Gaussian blur radius in pixels")

    def apply(self, image: Image.Image) -> Image.Image:
        return blur(image, self.radius)


class Sharpen(_Operation):
    op: Literal["sharpen"]

    def apply(self, image: Image.Image) -> Image.Image:
        return sharpen(image)


class Edges(_Operation):
    op: Literal["edges"]

    def apply(self, image: Image.Image) -> Image.Image:
        return edges(image)


class Resize(_Operation):
    op: Literal["resize"]
    width: int | None = Field(None, ge=1, le=MAX_DIMENSION)
    height: int | None = Field(None, ge=1, le=MAX_DIMENSION)

    @model_validator(mode="after")
    def _one_side_at_least(self) -> Resize:
        if self.width is None and self.height is None:
            raise ValueError("resize needs a width, a height or both")
        return self

    def apply(self, image: Image.Image) -> Image.Image:
        return resize(image, self.width, self.height)

    def output_size(self, size: Size) -> Size:
        return resized_size(size, self.width, self.height)


class Rotate(_Operation):
    op: Literal["rotate"]
    angle: float = Field(ge=-360, le=360, description="Degrees, counter-clockwise")

    def apply(self, image: Image.Image) -> Image.Image:
        return rotate(image, self.angle)

    def output_size(self, size: Size) -> Size:
        return rotated_size(size, self.angle)


class Flip(_Operation):
    op: Literal["flip"]
    direction: Literal["horizontal", "vertical"]

    def apply(self, image: Image.Image) -> Image.Image:
        return flip(image, self.direction)


class Brightness(_Operation):
    op: Literal["brightness"]
    factor: float = Field(ge=0, le=5, description="0 is black, 1 unchanged")

    def apply(self, image: Image.Image) -> Image.Image:
        return brightness(image, self.factor)


class Contrast(_Operation):
    op: Literal["contrast"]
    factor: float = Field(ge=0, le=5, description="0 is flat grey, 1 unchanged")

    def apply(self, image: Image.Image) -> Image.Image:
        return contrast(image, self.factor)


class Sepia(_Operation):
    op: Literal["sepia"]

    def apply(self, image: Image.Image) -> Image.Image:
        return sepia(image)


class Invert(_Operation):
    op: Literal["invert"]

    def apply(self, image: Image.Image) -> Image.Image:
        return invert(image)


class Threshold(_Operation):
    op: Literal["threshold"]
    level: int = Field(ge=0, le=255, description="Brighter pixels become white, others black")

    def apply(self, image: Image.Image) -> Image.Image:
        return threshold(image, self.level)


Operation = Annotated[
    Grayscale
    | Blur
    | Sharpen
    | Edges
    | Resize
    | Rotate
    | Flip
    | Brightness
    | Contrast
    | Sepia
    | Invert
    | Threshold,
    Field(discriminator="op"),
]
Pipeline = Annotated[list[Operation], Field(min_length=1, max_length=MAX_OPERATIONS)]

_pipeline_adapter: TypeAdapter[list[Operation]] = TypeAdapter(Pipeline)


def parse_pipeline(raw: Sequence[dict[str, Any]]) -> list[Operation]:
    """Validates stored or transported operations (raises pydantic.ValidationError)."""
    return _pipeline_adapter.validate_python(list(raw))


def dump_pipeline(operations: Sequence[Operation]) -> list[dict[str, Any]]:
    """The JSON form that is stored with jobs and images (unset optional fields left out)."""
    return [operation.model_dump(exclude_none=True) for operation in operations]


def output_size(size: Size, operations: Sequence[Operation]) -> Size:
    """The size of the pipeline's result."""
    for operation in operations:
        size = operation.output_size(size)
    return size


def largest_size(size: Size, operations: Sequence[Operation]) -> Size:
    """The largest canvas (in pixels) the pipeline makes, start and end included."""
    largest = size
    for operation in operations:
        size = operation.output_size(size)
        if size[0] * size[1] > largest[0] * largest[1]:
            largest = size
    return largest


def apply_pipeline(image: Image.Image, operations: Sequence[Operation]) -> Image.Image:
    image = normalize_mode(image)
    for operation in operations:
        image = operation.apply(image)
    return image
