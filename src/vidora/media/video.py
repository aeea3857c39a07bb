"""MP4 in and out, with PyAV: H.264 (libx264), yuv420p, tagged BT.709.

Why these choices:
- H.264 in yuv420p is the one format every browser plays, so the studio and the Videos API
  can hand these files straight to a <video> tag.
- A low CRF keeps small flat-colour objects faithful: the Shapes World judge classifies an
  object's colour by its nearest palette colour, and must agree with the renderer after a
  round trip (see tests/media/test_video.py for the measured worst case).
- Colour tags (BT.709, limited range) are written into the stream, so players and our own
  reader convert YUV back to RGB with the same matrix we used to write it.
- yuv420p needs an even width and height. Frames of odd size are refused with a clear
  error rather than padded, so a round trip never changes a video's size behind your back.

Every failure to read a file (missing, empty, corrupt, not a video) is a MediaError that
names the file; no raw PyAV exception leaves this module.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
from av.video.reformatter import ColorRange, Colorspace

from vidora.world.spec import FPS

CRF = 12
"""libx264 constant rate factor. 12 keeps the interior of 10 px flat objects within ~20 of
their RGB value (most error sits on edges, from 4:2:0 chroma), at ~7 kB per 64x64 clip."""

PRESET = "medium"
"""libx264 speed/size trade-off; clips are tiny, so the default is fast enough."""

THREADS = 1
"""libx264 encoder threads: for clips this small one is faster (0.30 s against 0.38 s for 96
frames of 96x64 on a 2-core CPU). It does not make two encodes of the same frames identical: in
the full test suite two have decoded up to 2 apart in one 16x16 block (the same block each time,
never when the test runs alone)."""

_TIME_EPS = 1e-3
"""Seconds of slack when matching timestamps, for containers that round them."""

Source = str | os.PathLike[str] | bytes
"""A path to a file, or the file's bytes."""


class MediaError(ValueError):
    """A media file could not be read or written; the message names the file and what to fix."""


@dataclass(frozen=True)
class VideoInfo:
    """What a video holds, read from its header (and one decoded frame) without decoding it all."""

    frames: int
    """Number of video frames."""
    fps: float
    """Average frame rate, frames per second."""
    width: int
    height: int
    seconds: float
    """Duration in seconds."""


# --- writing ---------------------------------------------------------------------------------


def _check_frames(frames: Any) -> np.ndarray:
    """Check frames are (T, H, W, 3) uint8 RGB that yuv420p can hold; errors say what to fix."""
    array = np.asarray(frames)
    if array.ndim != 4 or array.shape[-1] != 3:
        raise ValueError(f"frames must have shape (T, H, W, 3), got {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(
            f"frames must be uint8 RGB (0..255), got {array.dtype}; "
            "convert with np.clip(x, 0, 255).round().astype(np.uint8)"
        )
    t, h, w, _ = array.shape
    if t == 0 or h == 0 or w == 0:
        raise ValueError(f"frames must not be empty, got shape {array.shape}")
    if h % 2 or w % 2:
        raise ValueError(
            f"H.264 in yuv420p needs an even width and height, got {w}x{h}; "
            "crop or pad the frames (e.g. vidora.media.fit_image) to an even size"
        )
    return array


def _rate(fps: float | Fraction) -> Fraction:
    if not fps or fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return Fraction(fps).limit_denominator(1001)


def _write(target: str, frames: np.ndarray, fps: float | Fraction) -> None:
    rate = _rate(fps)
    height, width = frames.shape[1:3]
    # faststart moves the index to the front so browsers can play before the download ends.
    with av.open(target, mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        stream.time_base = 1 / rate
        stream.options = {"crf": str(CRF), "preset": PRESET, "threads": str(THREADS)}
        stream.codec_context.colorspace = Colorspace.ITU709
        stream.codec_context.color_range = ColorRange.MPEG
        stream.codec_context.color_primaries = 1  # BT.709
        stream.codec_context.color_trc = 1  # BT.709
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame = frame.reformat(
                format="yuv420p", dst_colorspace=Colorspace.ITU709, dst_color_range=ColorRange.MPEG
            )
            frame.pts = index  # one tick of 1/fps per frame: exact rate and frame count
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


def write_mp4(
    path: str | os.PathLike[str], frames: np.ndarray, fps: float | Fraction = FPS
) -> Path:
    """Write (T, H, W, 3) uint8 RGB frames to an H.264 mp4 at `fps`; returns the path."""
    array = _check_frames(frames)
    path = Path(path)
    if not path.parent.is_dir():
        raise MediaError(f"{path}: folder {path.parent} does not exist")
    try:
        _write(str(path), array, fps)
    except av.FFmpegError as error:
        raise MediaError(f"{path}: could not write mp4: {error}") from error
    return path


def encode_mp4(frames: np.ndarray, fps: float | Fraction = FPS) -> bytes:
    """The bytes of the mp4 `write_mp4` would write, without touching the disk."""
    array = _check_frames(frames)
    # Through a temporary file: faststart rewrites the file by name, which memory cannot do.
    with tempfile.TemporaryDirectory(prefix="vidora-") as folder:
        path = Path(folder) / "video.mp4"
        try:
            _write(str(path), array, fps)
        except av.FFmpegError as error:
            raise MediaError(f"could not encode mp4: {error}") from error
        return path.read_bytes()


# --- reading ---------------------------------------------------------------------------------


def _name(source: Source) -> str:
    return f"mp4 data ({len(source)} bytes)" if isinstance(source, bytes) else str(source)


def _size(source: Source) -> int:
    return len(source) if isinstance(source, bytes) else Path(source).stat().st_size


def _open(source: Source) -> Any:
    """Open a container for reading, turning every failure into a MediaError naming the file."""
    name = _name(source)
    if isinstance(source, bytes):
        if not source:
            raise MediaError(f"{name}: empty, not a video")
        target: Any = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.exists():
            raise MediaError(f"{name}: no such file")
        if not path.is_file():
            raise MediaError(f"{name}: not a file")
        if path.stat().st_size == 0:
            raise MediaError(f"{name}: empty file, not a video")
        target = str(path)
    try:
        container = av.open(target, mode="r")
    except (av.FFmpegError, OSError) as error:
        raise MediaError(f"{name}: not a readable video ({error})") from error
    if not container.streams.video:
        container.close()
        raise MediaError(f"{name}: holds no video stream")
    return container


_MATRICES = {
    1: Colorspace.ITU709,
    4: Colorspace.FCC,
    5: Colorspace.ITU601,  # BT.470BG
    6: Colorspace.ITU601,  # SMPTE 170M: the same matrix
    7: Colorspace.SMPTE240M,
    9: Colorspace.BT2020,
    10: Colorspace.BT2020,
}
"""FFmpeg's colour-matrix tags (AVColorSpace) to the matrices swscale can convert with."""


def _to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """YUV -> RGB with the matrix and range the stream says it used, turned upright.

    Untagged streams get what most players assume: BT.601 below 720 lines, BT.709 above.
    A phone's portrait video is stored sideways with a rotation tag; it is applied, so
    the frames come out the way the video plays.
    """
    colorspace = _MATRICES.get(frame.colorspace)
    if colorspace is None:
        colorspace = Colorspace.ITU709 if frame.height >= 720 else Colorspace.ITU601
    full = frame.color_range == ColorRange.JPEG or frame.format.name.startswith("yuvj")
    rgb = frame.to_ndarray(
        format="rgb24",
        src_colorspace=colorspace,
        src_color_range=ColorRange.JPEG if full else ColorRange.MPEG,
    )
    turns = _quarter_turns(frame)  # counter-clockwise, as np.rot90 turns
    return np.ascontiguousarray(np.rot90(rgb, turns)) if turns else rgb


def _quarter_turns(frame: av.VideoFrame) -> int:
    return round((frame.rotation or 0) / 90) % 4


def _decoded(container: Any, name: str) -> Iterator[tuple[float, av.VideoFrame]]:
    """Yield (seconds from the first frame, frame) in display order.

    A file that ends before its index does (a cut-off download or copy) is a MediaError,
    not a silently shorter video.
    """
    stream = container.streams.video[0]
    if stream.codec_context.width * stream.codec_context.height >= 640 * 360:
        stream.thread_type = "AUTO"  # worth its thread start-up only on larger frames
    rate = _native_fps(container)
    start: float | None = None
    index = packets = 0
    try:
        for packet in container.demux(stream):
            if packet.is_corrupt:
                raise MediaError(f"{name}: truncated or damaged (a packet is cut short)")
            packets += 1 if packet.size else 0
            for frame in packet.decode():
                time = frame.time if frame.time is not None else index / rate
                start = time if start is None else start
                index += 1
                yield time - start, frame
    except av.FFmpegError as error:
        raise MediaError(f"{name}: corrupt video data ({error})") from error
    listed = len(stream.index_entries or ())
    if listed and packets < listed:
        raise MediaError(f"{name}: truncated ({listed} frames listed, data for {packets})")


def _check_complete(container: Any, name: str, size: int) -> None:
    """Cheap truncation check: the index must not point past the end of the file."""
    entries = container.streams.video[0].index_entries or ()
    end = max((entry.pos + entry.size for entry in entries), default=0)
    if end > size:
        raise MediaError(f"{name}: truncated (data runs to byte {end}, the file has {size})")


def _native_fps(container: Any) -> float:
    stream = container.streams.video[0]
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else float(FPS)


def read_mp4(
    source: Source, *, fps: float | None = None, max_frames: int | None = None
) -> tuple[np.ndarray, float]:
    """Decode a video into ((T, H, W, 3) uint8 RGB frames, frames per second).

    With `fps`, frames are picked by timestamp to that rate (the frame on screen at each
    1/fps tick: dropped when the source is faster, repeated when slower) and that fps is
    returned. `max_frames` stops decoding early, so a long clip costs only what is kept.
    """
    if fps is not None and fps <= 0:
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    if max_frames is not None and max_frames < 1:
        raise ValueError(f"max_frames must be at least 1, got {max_frames}")
    name = _name(source)
    with _open(source) as container:
        native = _native_fps(container)
        frames = (
            _read_native(container, name, max_frames)
            if fps is None
            else _read_resampled(container, name, fps, max_frames, native)
        )
    if not frames:
        raise MediaError(f"{name}: no video frames could be decoded")
    return np.stack(frames), float(fps) if fps is not None else native


def _read_native(container: Any, name: str, max_frames: int | None) -> list[np.ndarray]:
    frames = []
    for _, frame in _decoded(container, name):
        frames.append(_to_rgb(frame))
        if max_frames is not None and len(frames) >= max_frames:
            break
    return frames


def _read_resampled(
    container: Any, name: str, fps: float, max_frames: int | None, native: float
) -> list[np.ndarray]:
    """Fill output slot k (time k/fps) with the last frame shown at or before that time."""
    frames: list[np.ndarray] = []
    limit = max_frames if max_frames is not None else float("inf")
    previous: tuple[float, av.VideoFrame] | None = None
    previous_rgb: np.ndarray | None = None

    def fill_until(end: float, frame: av.VideoFrame) -> None:
        nonlocal previous_rgb
        while len(frames) < limit and len(frames) / fps + _TIME_EPS < end:
            if previous_rgb is None:
                previous_rgb = _to_rgb(frame)  # converted once, however often repeated
            frames.append(previous_rgb)

    for time, frame in _decoded(container, name):
        if previous is not None:
            fill_until(time, previous[1])
        if len(frames) >= limit:
            break
        previous, previous_rgb = (time, frame), None
    else:
        if previous is not None:  # the last frame stays on screen for one frame's duration
            last_time, last = previous
            duration = float(last.duration * last.time_base) if last.duration else 1 / native
            fill_until(last_time + duration, last)
    return frames


def probe_mp4(source: Source) -> VideoInfo:
    """Frame count, rate, size and duration from the header, checking one frame decodes."""
    name = _name(source)
    with _open(source) as container:
        stream = container.streams.video[0]
        fps = _native_fps(container)
        frames = stream.frames
        if not frames:  # some containers do not store a count: count packets, no decoding
            frames = sum(1 for packet in container.demux(stream) if packet.size)
            container.seek(0)
        if stream.duration and stream.time_base:
            seconds = float(stream.duration * stream.time_base)
        elif container.duration:
            seconds = container.duration / av.time_base
        else:
            seconds = frames / fps
        _check_complete(container, name, _size(source))
        first = next(_decoded(container, name), None)
        if first is None or frames == 0:
            raise MediaError(f"{name}: no video frames could be decoded")
        frame = first[1]
        width, height = frame.width, frame.height
        if _quarter_turns(frame) % 2:
            width, height = height, width
        return VideoInfo(frames=frames, fps=fps, width=width, height=height, seconds=seconds)
