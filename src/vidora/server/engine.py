"""The boundary between the server and a model: requests in, frames out.

The server never imports torch at module level; an Engine is built only inside a worker
(by `ModelSpec.build_engine`), so API processes start fast and need no model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

from vidora.world.spec import FPS

if TYPE_CHECKING:
    from vidora.pipelines import TextToVideoPipeline


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


class PipelineEngine:
    """A `vidora.pipelines.TextToVideoPipeline` behind the Engine protocol.

    The pipeline takes one steps/guidance value per call and conditioning for all prompts
    of a call or none, so a batch is split into groups that agree on those; each group is
    one pipeline call, and progress runs over the whole batch.
    """

    def __init__(self, pipeline: TextToVideoPipeline) -> None:
        self.pipeline = pipeline

    def generate(
        self, requests: list[GenerationRequest], progress: Callable[[float], None]
    ) -> list[np.ndarray]:
        groups: dict[tuple[bool, bool, int | None, float | None], list[int]] = {}
        for index, r in enumerate(requests):
            key = (r.first_frame is not None, r.extend_from is not None, r.steps, r.guidance)
            groups.setdefault(key, []).append(index)
        results: list[np.ndarray | None] = [None] * len(requests)
        done = 0
        for (has_image, has_video, steps, guidance), indices in groups.items():
            group = [requests[i] for i in indices]

            def report(share: float, done: int = done, size: int = len(group)) -> None:
                progress((done + share * size) / len(requests))

            output = self.pipeline(
                prompt=[r.prompt for r in group],
                negative_prompt=[r.negative_prompt or "" for r in group],
                size=group[0].size,
                seconds=group[0].seconds,
                steps=steps,
                guidance=guidance,
                seed=[r.seed for r in group],
                image=[r.first_frame for r in group] if has_image else None,  # type: ignore[misc]
                video=[r.extend_from for r in group] if has_video else None,  # type: ignore[misc]
                progress=report,
            )
            for index, frames in zip(indices, output.videos, strict=True):
                results[index] = frames
            done += len(group)
        return [frames for frames in results if frames is not None]


def builtin_engine(checkpoint: str | None = None, device: str = "cpu") -> Engine:
    """The built-in model (`vidora.weights.BUILTIN_MODEL`), or another release file by path."""
    from vidora.pipelines import TextToVideoPipeline

    return PipelineEngine(TextToVideoPipeline.from_pretrained(checkpoint, device=device))


def tiny_random_engine(seed: int = 0) -> Engine:
    """A 2-layer random pipeline: real code, meaningless videos; for tests."""
    from vidora.pipelines import TextToVideoPipeline

    return PipelineEngine(TextToVideoPipeline.tiny_random(seed))
