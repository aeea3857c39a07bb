"""Still images with Pillow: a video's thumbnail and spritesheet, and images coming in
(the first frame for image-to-video), read and fitted to a video size."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vidora.media.video import MediaError

ImageSource = str | os.PathLike[str] | bytes
"""A path to an image file, or the file's bytes."""


def _check_frames(frames: np.ndarray) -> np.ndarray:
    array = np.asarray(frames)
    if array.ndim == 3:  # one image is a one-frame video
        array = array[None]
    if array.ndim != 4 or array.shape[-1] != 3 or array.dtype != np.uint8 or len(array) == 0:
        raise ValueError(
            "frames must be a non-empty uint8 RGB array of shape (T, H, W, 3) or (H, W, 3), "
            f"got {array.dtype} {array.shape}"
        )
    return array


def thumbnail_webp(frames: np.ndarray, *, quality: int = 90) -> bytes:
    """The middle frame as WebP: the first frame of a clip is often still empty or dark,
    the middle one shows what the clip is about."""
    array = _check_frames(frames)
    buffer = io.BytesIO()
    Image.fromarray(array[len(array) // 2]).save(buffer, format="WEBP", quality=quality)
    return buffer.getvalue()


def spritesheet_jpeg(
    frames: np.ndarray, *, columns: int = 4, count: int = 16, quality: int = 90
) -> bytes:
    """One JPEG grid of `count` evenly spaced frames, row by row, first and last included.

    A short clip gives fewer tiles (never a repeated frame); empty cells of the last row
    stay black. Players use it to preview a clip on hover without loading the video.
    """
    array = _check_frames(frames)
    if columns < 1 or count < 1:
        raise ValueError(f"columns and count must be at least 1, got {columns} and {count}")
    total, height, width, _ = array.shape
    indices = np.unique(np.linspace(0, total - 1, min(count, total)).round().astype(int))
    columns = min(columns, len(indices))
    rows = -(-len(indices) // columns)
    sheet = np.zeros((rows * height, columns * width, 3), np.uint8)
    for cell, index in enumerate(indices):
        top, left = (cell // columns) * height, (cell % columns) * width
        sheet[top : top + height, left : left + width] = array[index]
    buffer = io.BytesIO()
    Image.fromarray(sheet).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def load_image(source: ImageSource, *, background: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Read an image file (any format Pillow knows) as (H, W, 3) uint8 RGB.

    The EXIF orientation is applied, so a phone photo comes out the way it was taken.
    Transparent pixels are laid over `background` (black, like video letterboxing) rather
    than exposing whatever colour the file happens to store under them.
    """
    name = f"image data ({len(source)} bytes)" if isinstance(source, bytes) else str(source)
    if isinstance(source, bytes):
        if not source:
            raise MediaError(f"{name}: empty, not an image")
        stream = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise MediaError(f"{name}: no such file")
        stream = io.BytesIO(path.read_bytes())
    try:
        with Image.open(stream) as opened:
            opened.load()
            image = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, Image.DecompressionBombError) as error:
        raise MediaError(f"{name}: not a readable image ({error})") from error
    except (OSError, ValueError, SyntaxError) as error:  # truncated or damaged data
        raise MediaError(f"{name}: damaged image ({error})") from error
    if image.mode.startswith("I"):  # 16-bit greyscale: Pillow would clip it, so scale it
        values = np.asarray(image, dtype=np.float64)
        values = values / 257 if values.max() > 255 else values
        image = Image.fromarray(np.clip(values.round(), 0, 255).astype(np.uint8))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        canvas = Image.new("RGBA", image.size, (*background, 255))
        image = Image.alpha_composite(canvas, image)
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def fit_image(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Centre-crop `image` to the aspect ratio of width x height, then scale it there.

    Cropping (not padding or stretching) keeps shapes undistorted and fills the frame;
    Lanczos keeps edges sharp when shrinking. Returns (height, width, 3) uint8.
    """
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[-1] != 3 or array.dtype != np.uint8 or 0 in array.shape:
        raise ValueError(
            f"image must be a uint8 RGB array (H, W, 3), got {array.dtype} {array.shape}"
        )
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be at least 1, got {width}x{height}")
    if array.shape[:2] == (height, width):
        return array.copy()
    fitted = ImageOps.fit(
        Image.fromarray(array),
        (width, height),
        method=Image.Resampling.LANCZOS,
        centering=(0.5, 0.5),
    )
    return np.asarray(fitted, dtype=np.uint8).copy()
