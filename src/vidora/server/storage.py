"""Where files live under the data dir, and how they are written so none is ever half there.

    inputs/<video_id>/first_frame.png    the fitted input_reference (or an edit's source frame)
    inputs/<video_id>/extend_from.npy    the fitted frames an extension continues
    files/<video_id>/<attempt>/video.mp4, thumbnail.webp, spritesheet.jpg

Each claim of a job writes into its own attempt folder; the job row records which attempt
won (a conditional update on the claim), so a worker that lost its lease can never
overwrite or half-write the video that clients download.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

VARIANTS: dict[str, tuple[str, str]] = {
    "video": ("video.mp4", "video/mp4"),
    "thumbnail": ("thumbnail.webp", "image/webp"),
    "spritesheet": ("spritesheet.jpg", "image/jpeg"),
}
"""Content variant -> (file name, media type)."""


class Storage:
    """Paths and atomic writes under one root directory."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        (self.root / "inputs").mkdir(parents=True, exist_ok=True)
        (self.root / "files").mkdir(parents=True, exist_ok=True)

    # --- inputs ---------------------------------------------------------------------------

    def inputs_dir(self, video_id: str) -> Path:
        return self.root / "inputs" / video_id

    def save_first_frame(self, video_id: str, image: np.ndarray) -> None:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        _write_atomic(self.inputs_dir(video_id) / "first_frame.png", buffer.getvalue())

    def load_first_frame(self, video_id: str) -> np.ndarray:
        with Image.open(self.inputs_dir(video_id) / "first_frame.png") as image:
            return np.asarray(image.convert("RGB"), dtype=np.uint8)

    def save_extend_from(self, video_id: str, frames: np.ndarray) -> None:
        buffer = io.BytesIO()
        np.save(buffer, frames, allow_pickle=False)
        _write_atomic(self.inputs_dir(video_id) / "extend_from.npy", buffer.getvalue())

    def load_extend_from(self, video_id: str) -> np.ndarray:
        return np.load(self.inputs_dir(video_id) / "extend_from.npy", allow_pickle=False)

    def copy_inputs(self, source_id: str, target_id: str) -> None:
        """A remix reuses its source's inputs; hard links when the filesystem allows."""
        source = self.inputs_dir(source_id)
        if not source.is_dir():
            return
        target = self.inputs_dir(target_id)
        target.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            try:
                os.link(path, target / path.name)
            except OSError:
                shutil.copyfile(path, target / path.name)

    # --- outputs --------------------------------------------------------------------------

    def attempt_dir(self, video_id: str, attempt: str) -> Path:
        return self.root / "files" / video_id / attempt

    def write_outputs(self, video_id: str, attempt: str, files: dict[str, bytes]) -> None:
        """Write one attempt's files (variant -> bytes), each atomically."""
        folder = self.attempt_dir(video_id, attempt)
        for variant, data in files.items():
            _write_atomic(folder / VARIANTS[variant][0], data)

    def output_path(self, video_id: str, attempt: str, variant: str) -> Path:
        return self.attempt_dir(video_id, attempt) / VARIANTS[variant][0]

    def discard_attempt(self, video_id: str, attempt: str) -> None:
        shutil.rmtree(self.attempt_dir(video_id, attempt), ignore_errors=True)
        _remove_if_empty(self.root / "files" / video_id)

    def delete_video(self, video_id: str) -> None:
        """Remove every file of a video: inputs and all attempts."""
        shutil.rmtree(self.root / "files" / video_id, ignore_errors=True)
        shutil.rmtree(self.inputs_dir(video_id), ignore_errors=True)

    def delete_outputs(self, video_id: str) -> None:
        shutil.rmtree(self.root / "files" / video_id, ignore_errors=True)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a unique temporary name in the same folder, fsync, then rename over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def _remove_if_empty(folder: Path) -> None:
    with contextlib.suppress(OSError):
        folder.rmdir()
