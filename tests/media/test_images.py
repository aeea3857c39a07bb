"""Thumbnails, spritesheets, images in (modes, orientation, damage) and fitting to a size."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vidora.media import MediaError, fit_image, load_image, spritesheet_jpeg, thumbnail_webp


def numbered_frames(num_frames: int, width: int = 32, height: int = 24) -> np.ndarray:
    """Frame i is flat grey 8*i, so a tile tells which frame it came from."""
    levels = (np.arange(num_frames) * 8).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


def decode(data: bytes, expected_format: str) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == expected_format
        return np.asarray(image.convert("RGB"))


def test_thumbnail_is_the_middle_frame_as_webp():
    thumbnail = decode(thumbnail_webp(numbered_frames(32)), "WEBP")
    assert thumbnail.shape == (24, 32, 3)
    assert round(thumbnail.mean() / 8) == 16


def test_thumbnail_of_a_single_image():
    image = np.full((64, 96, 3), 200, np.uint8)
    assert decode(thumbnail_webp(image), "WEBP").shape == (64, 96, 3)


def test_spritesheet_is_a_grid_of_evenly_spaced_frames():
    sheet = decode(spritesheet_jpeg(numbered_frames(32), columns=4, count=8), "JPEG")
    assert sheet.shape == (2 * 24, 4 * 32, 3)
    tiles = [
        sheet[r * 24 : (r + 1) * 24, c * 32 : (c + 1) * 32] for r in range(2) for c in range(4)
    ]
    indices = [round(tile[4:-4, 4:-4].mean() / 8) for tile in tiles]
    assert indices[0] == 0 and indices[-1] == 31, "first and last frame are included"
    assert indices == sorted(indices) and len(set(indices)) == 8
    assert max(np.diff(indices)) - min(np.diff(indices)) <= 1, "evenly spaced"


def test_spritesheet_of_a_short_clip_never_repeats_frames():
    sheet = decode(spritesheet_jpeg(numbered_frames(3), columns=2, count=16), "JPEG")
    assert sheet.shape == (2 * 24, 2 * 32, 3)  # 3 tiles in a 2x2 grid, the last cell black
    assert sheet[24:, 32:].max() < 10


def test_spritesheet_rejects_bad_arguments():
    with pytest.raises(ValueError, match="columns"):
        spritesheet_jpeg(numbered_frames(4), columns=0)
    with pytest.raises(ValueError, match="uint8"):
        spritesheet_jpeg(np.zeros((4, 8, 8, 3), np.float32))


def encoded(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def test_load_image_from_path_and_bytes(tmp_path: Path):
    pixels = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    path = tmp_path / "photo.png"
    Image.fromarray(pixels).save(path)
    np.testing.assert_array_equal(load_image(path), pixels)
    np.testing.assert_array_equal(load_image(path.read_bytes()), pixels)


def test_load_image_lays_transparency_over_the_background():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (255, 0, 0)
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half fully transparent red
    image = load_image(encoded(Image.fromarray(rgba, "RGBA"), "PNG"), background=(0, 0, 255))
    assert image.shape == (4, 4, 3) and image.dtype == np.uint8
    assert (image[:2] == (255, 0, 0)).all()
    assert (image[2:] == (0, 0, 255)).all()


def test_load_image_handles_palette_and_greyscale():
    palette = Image.fromarray(np.full((5, 6, 3), (10, 200, 30), np.uint8)).quantize(4)
    assert (load_image(encoded(palette, "PNG")) == (10, 200, 30)).all()
    grey = Image.fromarray(np.full((5, 6), 77, np.uint8), "L")
    assert (load_image(encoded(grey, "PNG")) == 77).all()
    deep = Image.fromarray(np.full((5, 6), 65535, np.uint16))  # 16-bit white
    assert (load_image(encoded(deep, "PNG")) == 255).all()
    half = Image.fromarray(np.full((5, 6), 128 * 257, np.uint16))
    assert (load_image(encoded(half, "PNG")) == 128).all()


def test_load_image_applies_exif_orientation():
    pixels = np.zeros((10, 20, 3), np.uint8)
    pixels[:, :10] = (255, 255, 255)  # left half white, stored landscape
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    image = load_image(encoded(Image.fromarray(pixels), "JPEG", exif=exif, quality=95))
    assert image.shape == (20, 10, 3)
    assert image[:10].mean() > 200 and image[10:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize(
    ("name", "content"),
    [("notes.png", b"not an image at all"), ("empty.jpg", b"")],
)
def test_load_image_rejects_non_images_naming_them(tmp_path: Path, name: str, content: bytes):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(MediaError, match=name):
        load_image(path)


def test_load_image_rejects_damaged_and_missing_files(tmp_path: Path):
    data = encoded(Image.fromarray(np.zeros((64, 64, 3), np.uint8)), "PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="cut.png"):
        load_image(path)
    with pytest.raises(MediaError, match="missing.png: no such file"):
        load_image(tmp_path / "missing.png")
    with pytest.raises(MediaError, match="image data"):
        load_image(b"\x89PNG but broken")


def marked_image(width: int, height: int) -> np.ndarray:
    """Grey, with a red 4x4 mark at the exact centre and blue bars at the left/right edges."""
    image = np.full((height, width, 3), 128, np.uint8)
    image[:, :8] = image[:, -8:] = (0, 0, 255)
    image[height // 2 - 2 : height // 2 + 2, width // 2 - 2 : width // 2 + 2] = (255, 0, 0)
    return image


def red_centre(image: np.ndarray) -> tuple[float, float]:
    ys, xs = np.nonzero((image[..., 0] > 180) & (image[..., 2] < 80))
    return float(xs.mean()), float(ys.mean())


def test_fit_image_crops_the_centre_then_scales():
    wide = marked_image(200, 100)  # 2:1 into 1:1: the sides are cropped off
    fitted = fit_image(wide, 64, 64)
    assert fitted.shape == (64, 64, 3) and fitted.dtype == np.uint8
    assert red_centre(fitted) == pytest.approx((31.5, 31.5), abs=0.6)
    assert fitted[..., 2].max() < 200, "the blue edge bars were cropped away, not squeezed in"
    mark = (fitted[..., 0] > 180) & (fitted[..., 2] < 80)
    ys, xs = np.nonzero(mark)
    assert abs((xs.max() - xs.min()) - (ys.max() - ys.min())) <= 1, "not stretched"


def test_fit_image_to_landscape_and_portrait():
    square = marked_image(120, 120)
    landscape = fit_image(square, 96, 64)
    portrait = fit_image(square, 64, 96)
    assert landscape.shape == (64, 96, 3) and portrait.shape == (96, 64, 3)
    assert red_centre(landscape) == pytest.approx((47.5, 31.5), abs=0.6)
    assert red_centre(portrait) == pytest.approx((31.5, 47.5), abs=0.6)
    assert landscape[:, :4, 2].mean() > 200, "a top/bottom crop keeps the side bars"


def test_fit_image_same_size_is_unchanged_and_bad_input_is_refused():
    image = marked_image(64, 96)
    np.testing.assert_array_equal(fit_image(image, 64, 96), image)
    with pytest.raises(ValueError, match="at least 1"):
        fit_image(image, 0, 64)
    with pytest.raises(ValueError, match="uint8"):
        fit_image(image.astype(np.float32), 64, 64)
