"""The boundary between the server and a model: requests in, frames out.

The server never imports torch at module level; an Engine is built only inside a worker
(by `ModelSpec.build_engine`), so API processes start fast and need no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from vidora.world.spec import FPS


@dataclass(frozen=True)
class GenerationRequest:
    """One video to generate; what a job row becomes once its inputs are loaded."""

    prompt: str
    negative_prompt: str | None
    size: str
    """WIDTHxHEIGHT, one of the model's sizes."""
    seconds: int
    """Length of the frames to generate (for an extension: of the new part only)."""
    seed: int
    steps: int | None
    """Sampler steps; None means the model's default."""
    guidance: float | None
    """Classifier-free guidance scale; None means the model's default."""
    first_frame: np.ndarray | None
    """(H, W, 3) uint8, already fitted to `size`: image-to-video (and edits)."""
    extend_from: np.ndarray | None
    """(T, H, W, 3) uint8 frames, fitted to `size`, of the video to continue."""

    @property
    def num_frames(self) -> int:
        return self.seconds * FPS


class Engine(Protocol):
    """A loaded model. One per model id in the registry; used from one thread at a time."""

    def generate(
        self, requests: list[GenerationRequest], progress: Callable[[float], None]
    ) -> list[np.ndarray]:
        """Frames (seconds * 8, H, W, 3) uint8 per request, at 8 fps.

        All requests in one call share model, size and seconds. For a request with
        `extend_from`, only the new frames are returned; the server stitches them after
        the source. `progress` is called with the finished fraction (0..1) and may raise
        to abandon the batch (every job in it was cancelled).
        """
        ...


def builtin_engine(**options: object) -> Engine:
    """The built-in model (`vidora-shapes-v1`), loaded from the package's weights."""
    raise RuntimeError(
        "the built-in model is not available yet: vidora.pipelines provides no pipeline"
    )
