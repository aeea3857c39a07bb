"""A deterministic stand-in for a model, loaded by server processes the tests start.

Frames are a function of the request alone (prompt, seed, size, seconds, conditioning), so
tests can check that remix keeps the seed, that the first frame is the reference image and
that an extension continues its source. Options (from the registry YAML):
`step_seconds` makes generation slow enough to kill a worker mid-job; a prompt containing
"[fail]" raises, to exercise `generation_failed`.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import numpy as np

from vidora.server.engine import GenerationRequest


def colour_of(text: str) -> np.ndarray:
    """A stable RGB colour for a string (the prompt's "signature")."""
    digest = hashlib.sha256(text.encode()).digest()
    return np.frombuffer(digest[:3], dtype=np.uint8).copy()


def render(request: GenerationRequest) -> np.ndarray:
    """A square of the prompt's colour moving right on a background set by the seed."""
    width, height = (int(part) for part in request.size.split("x"))
    frames = np.empty((request.num_frames, height, width, 3), dtype=np.uint8)
    background = np.array([request.seed % 251, (request.seed // 251) % 251, 40], dtype=np.uint8)
    if request.extend_from is not None:
        base = request.extend_from[-1]
    elif request.first_frame is not None:
        base = request.first_frame
    else:
        base = np.broadcast_to(background, (height, width, 3))
    side = max(4, height // 4)
    for t in range(request.num_frames):
        frame = base.copy()
        x = (t * 2) % max(1, width - side)
        frame[height // 2 - side // 2 : height // 2 + side // 2, x : x + side] = colour_of(
            request.prompt
        )
        frames[t] = frame
    if request.first_frame is not None and request.extend_from is None:
        frames[0] = request.first_frame
    return frames


class FakeEngine:
    def __init__(self, step_seconds: float = 0.0, steps: int = 4) -> None:
        self.step_seconds = step_seconds
        self.steps = steps
        self.calls: list[int] = []
        """Batch size of each generate() call."""
        self.steps_run = 0

    def generate(
        self, requests: list[GenerationRequest], progress: Callable[[float], None]
    ) -> list[np.ndarray]:
        if len({(r.size, r.seconds) for r in requests}) != 1:
            raise ValueError("a batch must share size and seconds")
        self.calls.append(len(requests))
        for step in range(self.steps):
            time.sleep(self.step_seconds)
            self.steps_run += 1
            progress((step + 1) / self.steps)
        for request in requests:
            if "[fail]" in request.prompt:
                raise RuntimeError("the fake engine was asked to fail")
        return [render(request) for request in requests]


def build(**options: float) -> FakeEngine:
    return FakeEngine(**options)  # type: ignore[arg-type]
