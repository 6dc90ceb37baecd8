"""The operations on real pixels, and their parameter schemas (no database, no processes)."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError

from api.processing.imaging import make_thumbnail, save_clean
from api.processing.operations import (
    apply_pipeline,
    largest_size,
    output_size,
    parse_pipeline,
)


def run(image: Image.Image, *operations: dict[str, Any]) -> Image.Image:
    return apply_pipeline(image, parse_pipeline(list(operations)))


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.int16)


@pytest.fixture
def colourful() -> Image.Image:
    """A 40×30 gradient: every pixel differs, red grows left to right, green top to bottom."""
    x = np.linspace(0, 255, 40, dtype=np.uint8)[None, :].repeat(30, axis=0)
    y = np.linspace(0, 255, 30, dtype=np.uint8)[:, None].repeat(40, axis=1)
    return Image.fromarray(np.dstack([x, y, np.full_like(x, 90)]), "RGB")


def test_grayscale_has_equal_channels(colourful: Image.Image) -> None:
    result = pixels(run(colourful, {"op": "grayscale"}))
    assert (result[..., 0] == result[..., 1]).all()
    assert (result[..., 1] == result[..., 2]).all()
    assert len(np.unique(result)) > 10


def test_resize_gives_the_asked_size_and_keeps_the_ratio_when_one_side_is_missing(
    colourful: Image.Image,
) -> None:
    assert run(colourful, {"op": "resize", "width": 13, "height": 7}).size == (13, 7)
    assert run(colourful, {"op": "resize", "width": 20}).size == (20, 15)
    assert run(colourful, {"op": "resize", "height": 60}).size == (80, 60)


def test_flip_moves_a_known_pixel() -> None:
    image = Image.new("RGB", (5, 4), (0, 0, 0))
    image.putpixel((0, 0), (255, 0, 0))
    assert run(image, {"op": "flip", "direction": "horizontal"}).getpixel((4, 0)) == (255, 0, 0)
    assert run(image, {"op": "flip", "direction": "vertical"}).getpixel((0, 3)) == (255, 0, 0)


def test_threshold_yields_two_values(colourful: Image.Image) -> None:
    result = np.asarray(run(colourful, {"op": "threshold", "level": 128}))
    assert set(np.unique(result)) == {0, 255}


def test_invert_is_255_minus_each_channel(colourful: Image.Image) -> None:
    assert (pixels(run(colourful, {"op": "invert"})) == 255 - pixels(colourful)).all()


def test_rotate_90_turns_the_canvas_counter_clockwise() -> None:
    image = Image.new("RGB", (6, 3), (0, 0, 0))
    image.putpixel((5, 0), (0, 255, 0))  # top right
    rotated = run(image, {"op": "rotate", "angle": 90})
    assert rotated.size == (3, 6)
    assert rotated.getpixel((0, 0)) == (0, 255, 0)  # top right ends top left


@pytest.mark.parametrize("angle", [0, 30, -45, 90, 135.5, 180, 270, 359, -360])
def test_rotated_size_is_predicted_exactly(colourful: Image.Image, angle: float) -> None:
    operations = parse_pipeline([{"op": "rotate", "angle": angle}])
    assert apply_pipeline(colourful, operations).size == output_size(colourful.size, operations)


def test_blur_smooths_and_sharpen_and_edges_change_the_pixels() -> None:
    checker = Image.fromarray((np.indices((32, 32)).sum(axis=0) % 2 * 255).astype(np.uint8))
    blurred = np.asarray(run(checker, {"op": "blur", "radius": 2}))
    assert blurred.std() < np.asarray(checker).std() / 4
    step = Image.new("L", (16, 16), 0)
    step.paste(255, (8, 0, 16, 16))
    edges = np.asarray(run(step, {"op": "edges"}))[1:-1, 1:-1]  # the border is not filtered
    assert (edges[:, 7] == 255).all()  # the first bright column is the edge...
    assert (np.delete(edges, 7, axis=1) == 0).all()  # ...and nothing else is
    soft = run(checker, {"op": "blur", "radius": 1})
    assert np.asarray(run(soft, {"op": "sharpen"})).std() > np.asarray(soft).std()


def test_brightness_and_contrast_factors() -> None:
    grey = Image.new("RGB", (4, 4), (100, 100, 100))
    assert run(grey, {"op": "brightness", "factor": 0}).getpixel((0, 0)) == (0, 0, 0)
    assert run(grey, {"op": "brightness", "factor": 2}).getpixel((0, 0)) == (200, 200, 200)
    two_tone = Image.new("L", (4, 2), 100)
    two_tone.paste(200, (0, 0, 4, 1))
    flat = np.asarray(run(two_tone, {"op": "contrast", "factor": 0}))
    assert len(np.unique(flat)) == 1


def test_sepia_tones_grey_towards_brown() -> None:
    r, g, b = run(Image.new("RGB", (2, 2), (100, 100, 100)), {"op": "sepia"}).getpixel((0, 0))
    assert r > g > b


def test_colour_operations_keep_the_alpha_channel() -> None:
    image = Image.new("RGBA", (4, 4), (10, 200, 30, 77))
    for operation in ({"op": "grayscale"}, {"op": "invert"}, {"op": "threshold", "level": 50}):
        result = run(image, operation)
        assert result.mode in ("RGBA", "LA")
        assert result.getchannel("A").getpixel((0, 0)) == 77


def test_palette_and_cmyk_sources_are_normalised() -> None:
    palette = Image.new("P", (4, 4), 3)
    assert run(palette, {"op": "invert"}).mode == "RGB"
    assert run(Image.new("CMYK", (4, 4)), {"op": "blur", "radius": 1}).mode == "RGB"


def test_sixteen_bit_greyscale_is_scaled_not_clipped() -> None:
    buffer = io.BytesIO()
    ramp = np.linspace(0, 65535, 256).astype(np.uint16)[None, :].repeat(4, axis=0)
    Image.fromarray(ramp).save(buffer, "PNG")
    sixteen_bit = Image.open(buffer)
    assert sixteen_bit.mode.startswith("I")
    result = np.asarray(run(sixteen_bit, {"op": "flip", "direction": "vertical"}))
    assert result.dtype == np.uint8
    assert (result[0, 0], result[0, 128], result[0, -1]) == (0, 128, 255)


def test_operations_are_applied_in_order() -> None:
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.putpixel((39, 0), (0, 255, 0))  # top right
    rotate = {"op": "rotate", "angle": 90}
    mirror = {"op": "flip", "direction": "horizontal"}
    # A quarter turn brings the top right to the top left, the mirror then to the top right...
    assert run(image, rotate, mirror).getpixel((19, 0)) == (0, 255, 0)
    # ...while mirroring first brings it to the top left, and the turn to the bottom left.
    assert run(image, mirror, rotate).getpixel((0, 39)) == (0, 255, 0)


def test_largest_size_counts_intermediate_canvases() -> None:
    operations = parse_pipeline(
        [{"op": "resize", "width": 8000, "height": 8000}, {"op": "resize", "width": 10}]
    )
    assert largest_size((100, 100), operations) == (8000, 8000)
    assert output_size((100, 100), operations) == (10, 10)


@pytest.mark.parametrize(
    ("operations", "problem"),
    [
        ([], "at least 1"),
        ([{"op": "grayscale"}] * 11, "at most 10"),
        ([{"op": "melt"}], "does not match any of the expected tags"),
        ([{"op": "blur", "radius": 0}], "greater than or equal to 0.1"),
        ([{"op": "blur", "radius": 51}], "less than or equal to 50"),
        ([{"op": "blur"}], "Field required"),
        ([{"op": "resize"}], "width, a height or both"),
        ([{"op": "resize", "width": 8001}], "less than or equal to 8000"),
        ([{"op": "rotate", "angle": 361}], "less than or equal to 360"),
        ([{"op": "flip", "direction": "diagonal"}], "'horizontal' or 'vertical'"),
        ([{"op": "brightness", "factor": -0.1}], "greater than or equal to 0"),
        ([{"op": "contrast", "factor": 5.5}], "less than or equal to 5"),
        ([{"op": "threshold", "level": 256}], "less than or equal to 255"),
        ([{"op": "sepia", "strength": 2}], "Extra inputs are not permitted"),
        ([{"op": "blur", "radius": float("nan")}], "finite number"),
    ],
)
def test_bad_pipelines_are_refused_with_the_reason(
    operations: list[dict[str, Any]], problem: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_pipeline(operations)
    assert problem in str(raised.value)


def test_saved_results_and_thumbnails_carry_no_exif(tmp_path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90° clockwise to display
    exif[0x8825] = {1: "N"}  # a GPS block
    source = tmp_path / "photo.jpg"
    Image.new("RGB", (40, 20), (200, 30, 30)).save(source, exif=exif)

    data, media_type = make_thumbnail(source, 32)
    assert media_type == "image/jpeg"
    thumb = Image.open(io.BytesIO(data))
    assert thumb.size == (16, 32)  # orientation applied: portrait
    assert len(thumb.getexif()) == 0

    with Image.open(source) as photo:
        photo.load()
        buffer = io.BytesIO()
        save_clean(photo, buffer, "JPEG")
    assert len(Image.open(io.BytesIO(buffer.getvalue())).getexif()) == 0
