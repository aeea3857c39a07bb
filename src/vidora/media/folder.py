"""Videos of your own: a dataset folder, and a loader that trains on it.

A dataset folder holds mp4 files and, beside them, `manifest.jsonl`: one JSON object per
line, `{"path": "000000.mp4", "caption": "a red circle moving left"}`, with paths relative
to the folder. It is the format `vidora world export` writes and any script can write: no
database, no index, readable with `head`.

The loader (`VideoFolderDataset`) turns clips of any size, rate and length into training
items like Shapes World's: a fixed frame rate and frame count, and one of a few sizes, the
size bucket whose aspect ratio is nearest the clip's. torch is imported only when an item
is built, so `import vidora.media` stays light for the server.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from vidora.media.images import fit_image
from vidora.media.video import MediaError, probe_mp4, read_mp4, write_mp4
from vidora.world.spec import FPS, NUM_FRAMES, SIZES

MANIFEST_NAME = "manifest.jsonl"
FORMAT_HELP = (
    f'a dataset folder holds {MANIFEST_NAME} with one {{"path": "clip.mp4", "caption": "..."}} '
    "per line, paths relative to the folder"
)


class ManifestError(ValueError):
    """A dataset folder's manifest is missing or malformed; the message says where and why."""


class SkippedVideoWarning(UserWarning):
    """A clip in a dataset folder could not be read and was left out."""


@dataclass(frozen=True)
class ManifestEntry:
    """One line of a manifest."""

    path: str
    """The clip's path, relative to the dataset folder."""
    caption: str
    line: int
    """Line number in manifest.jsonl (from 1), for error messages."""


# --- the folder format -----------------------------------------------------------------------


def read_manifest(root: str | os.PathLike[str]) -> list[ManifestEntry]:
    """Parse `root/manifest.jsonl`; blank lines are allowed, anything else malformed is an error."""
    root = Path(root)
    manifest = root / MANIFEST_NAME
    if not root.is_dir():
        raise ManifestError(f"{root}: no such folder; {FORMAT_HELP}")
    if not manifest.is_file():
        raise ManifestError(f"{root}: no {MANIFEST_NAME} in this folder; {FORMAT_HELP}")
    entries = []
    with manifest.open(encoding="utf-8") as lines:
        for number, text in enumerate(lines, start=1):
            if text.strip():
                entries.append(_parse_line(manifest, number, text))
    if not entries:
        raise ManifestError(f"{manifest}: empty, no clips listed; {FORMAT_HELP}")
    return entries


def _parse_line(manifest: Path, number: int, text: str) -> ManifestEntry:
    where = f"{manifest}, line {number}"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise ManifestError(f"{where}: not valid JSON ({error.msg}); {FORMAT_HELP}") from None
    if not isinstance(record, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(record).__name__}")
    missing = [key for key in ("path", "caption") if key not in record]
    if missing:
        raise ManifestError(f"{where}: missing {' and '.join(repr(k) for k in missing)}")
    path, caption = record["path"], record["caption"]
    if not isinstance(path, str) or not path.strip():
        raise ManifestError(f"{where}: 'path' must be a non-empty string, got {path!r}")
    if Path(path).is_absolute():
        raise ManifestError(f"{where}: 'path' must be relative to the folder, got {path!r}")
    if not isinstance(caption, str):
        raise ManifestError(f"{where}: 'caption' must be a string, got {caption!r}")
    return ManifestEntry(path=path, caption=caption, line=number)


def write_dataset_folder(
    root: str | os.PathLike[str],
    items: Iterable[tuple[np.ndarray, str]],
    fps: float | Fraction = FPS,
    *,
    overwrite: bool = False,
) -> int:
    """Write (frames, caption) pairs as `root/000000.mp4`, ... and `root/manifest.jsonl`.

    Items are consumed one at a time (wrap them in a progress bar if you like). The
    manifest appears only once every clip is written, so a half-finished export is never
    mistaken for a dataset. Returns the number of clips written.
    """
    root = Path(root)
    manifest = root / MANIFEST_NAME
    if root.exists() and not root.is_dir():
        raise ManifestError(f"{root} is a file; a dataset folder must be a folder")
    if manifest.exists() and not overwrite:
        raise ManifestError(
            f"{root} already holds a dataset ({MANIFEST_NAME}); choose another folder, "
            "or overwrite it (overwrite=True, --overwrite)"
        )
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{MANIFEST_NAME}.partial"
    count = 0
    try:
        with partial.open("w", encoding="utf-8") as out:
            for count, (frames, caption) in enumerate(items, start=1):
                if not isinstance(caption, str):
                    raise ValueError(f"item {count - 1}: caption must be a string, got {caption!r}")
                name = f"{count - 1:06d}.mp4"
                write_mp4(root / name, frames, fps)
                out.write(json.dumps({"path": name, "caption": caption}, ensure_ascii=False) + "\n")
        if count == 0:
            raise ValueError("no items to write: a dataset folder needs at least one clip")
        partial.replace(manifest)
    finally:
        partial.unlink(missing_ok=True)
    return count


# --- the loader ------------------------------------------------------------------------------


def _parse_size(size: str) -> tuple[int, int]:
    """'96x64' -> (96, 64); any positive WIDTHxHEIGHT, so fine-tuning is not tied to SIZES."""
    width, _, height = size.partition("x")
    if not (width.isdigit() and height.isdigit()) or int(width) < 1 or int(height) < 1:
        raise ValueError(f"a size is written WIDTHxHEIGHT, like '96x64', got {size!r}")
    return int(width), int(height)


def nearest_size(width: int, height: int, sizes: Sequence[str] = SIZES) -> str:
    """The size whose aspect ratio is nearest width/height (log ratio, so 2:1 and 1:2 are
    equally far from 1:1); ties go to the size listed first."""
    if width < 1 or height < 1:
        raise ValueError(f"width and height must be positive, got {width}x{height}")
    if not sizes:
        raise ValueError("sizes must not be empty")
    aspect = math.log(width / height)

    def distance(size: str) -> float:
        w, h = _parse_size(size)
        return abs(math.log(w / h) - aspect)

    return min(sizes, key=distance)


class VideoFolderDataset:
    """A map-style torch dataset over a dataset folder.

    Item: {"video": (3, T, H, W) float in [-1, 1], "caption": str, "size": "WxH"}, with
    T = num_frames at `fps` (frames picked by timestamp; a short clip repeats its last
    frame) and the size bucket whose aspect ratio is nearest the clip's (centre-crop, then
    scale). Unreadable clips are skipped with a SkippedVideoWarning naming them: when the
    dataset is built (each clip is probed), and again if one fails later, in which case
    another clip of the same size is returned so that size-bucketed batches still stack.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        fps: float = FPS,
        sizes: Sequence[str] = SIZES,
        num_frames: int = NUM_FRAMES,
    ) -> None:
        if fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        for size in sizes:
            _parse_size(size)
        self.root = Path(root)
        self.fps = fps
        self.sizes = tuple(sizes)
        self.num_frames = num_frames
        self.entries: list[ManifestEntry] = []
        self.sizes_of_items: list[str] = []  # each item's bucket, for a bucketing sampler
        for entry in read_manifest(self.root):
            try:
                info = probe_mp4(self.root / entry.path)
            except MediaError as error:
                _warn_skipped(error)
                continue
            self.entries.append(entry)
            self.sizes_of_items.append(nearest_size(info.width, info.height, self.sizes))
        if not self.entries:
            raise ManifestError(f"{self.root}: none of the clips in {MANIFEST_NAME} can be read")
        self._broken: set[int] = set()

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def captions(self) -> list[str]:
        """Each item's caption, without decoding (items are the readable clips, in order)."""
        return [entry.caption for entry in self.entries]

    def size_of(self, item: int) -> str:
        """Item `item`'s size bucket, without decoding it (what BucketBatchSampler asks)."""
        return self.sizes_of_items[item]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} clips")
        index %= len(self)
        for candidate in self._same_size_from(index):
            try:
                frames = self.load_frames(candidate)
            except MediaError as error:
                self._broken.add(candidate)
                _warn_skipped(error)
                continue
            import torch

            video = torch.from_numpy(frames).permute(3, 0, 1, 2).float() / 127.5 - 1.0
            return {
                "video": video,  # (3, T, H, W)
                "caption": self.entries[candidate].caption,
                "size": self.sizes_of_items[candidate],
            }
        raise MediaError(
            f"{self.root}: no readable clip of size {self.sizes_of_items[index]} is left"
        )

    def _same_size_from(self, index: int) -> Iterator[int]:
        """The item itself, then the other items of its size, in order, skipping broken ones."""
        size = self.sizes_of_items[index]
        for i in itertools.chain(range(index, len(self)), range(index)):
            if self.sizes_of_items[i] == size and i not in self._broken:
                yield i

    def load_frames(self, index: int) -> np.ndarray:
        """(num_frames, H, W, 3) uint8 frames of one item, resampled, padded and fitted."""
        frames, _ = read_mp4(
            self.root / self.entries[index].path, fps=self.fps, max_frames=self.num_frames
        )
        if len(frames) < self.num_frames:  # short clip: hold the last frame
            padding = np.repeat(frames[-1:], self.num_frames - len(frames), axis=0)
            frames = np.concatenate([frames, padding])
        width, height = _parse_size(self.sizes_of_items[index])
        if frames.shape[1:3] == (height, width):
            return frames
        return np.stack([fit_image(frame, width, height) for frame in frames])


def _warn_skipped(error: MediaError) -> None:
    warnings.warn(f"skipping unreadable clip: {error}", SkippedVideoWarning, stacklevel=3)
