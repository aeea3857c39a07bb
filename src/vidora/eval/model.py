"""Evaluating a trained model: the pipeline as a harness generator, and the conditioning checks.

`PipelineGenerator` lets `evaluate` drive a `TextToVideoPipeline` in batches. The two checks
measure what text-to-video adherence cannot: image-to-video (does the video start from the
given image, and then move as told?) and extension (is the seam of an 8 s video smooth, and
does the object keep moving as told across it?).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from vidora.pipelines import TextToVideoPipeline
from vidora.pipelines.text_to_video import EXTENSION_FRAMES
from vidora.world.judge import analyse, judge, scene_prompt
from vidora.world.spec import NUM_FRAMES
from vidora.world.splits import get_clip


@dataclass
class PipelineGenerator:
    """(prompt, size, seed) -> frames, and the batched form the harness prefers."""

    pipeline: TextToVideoPipeline
    steps: int | None = None
    guidance: float | None = None
    name: str = "vidora"

    def __call__(self, prompt: str, size: str, seed: int) -> np.ndarray:
        return self.generate_batch([prompt], [size], [seed])[0]

    def generate_batch(
        self, prompts: list[str], sizes: list[str], seeds: list[int]
    ) -> list[np.ndarray]:
        if len(set(sizes)) != 1:
            raise ValueError("a batch must be of one size")
        out = self.pipeline(
            prompts, size=sizes[0], seed=seeds, steps=self.steps, guidance=self.guidance
        )
        return out.videos


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def image_to_video_check(
    pipeline: TextToVideoPipeline, n: int = 50, seed: int = 0, batch: int = 8
) -> dict[str, Any]:
    """Give eval-seen clips' first frames as images: PSNR of frame 0, and motion adherence."""
    clips = [get_clip("eval-seen", i, seed) for i in range(n)]
    psnrs, motion_ok = [], []
    for size in {c.scene.size for c in clips}:
        group = [c for c in clips if c.scene.size == size]
        for start in range(0, len(group), batch):
            part = group[start : start + batch]
            images = [c.frames(1)[0] for c in part]
            videos = pipeline(
                [c.caption for c in part], size=size, seed=[c.index for c in part], image=images
            ).videos
            for clip, image, video in zip(part, images, videos, strict=True):
                psnrs.append(psnr(video[0], image))
                verdict = judge(video, scene_prompt(clip.scene))
                motion_ok.extend(o.found and o.motion_ok for o in verdict.objects)
    return {
        "n": n,
        "first_frame_psnr_db": float(np.mean(psnrs)),
        "motion_adherence": float(np.mean(motion_ok)),
    }


def seam_steps(num_frames: int) -> list[int]:
    """Indices into a video's frame-to-frame steps where its chunks meet: the first chunk's 32
    frames, then `EXTENSION_FRAMES` (27) new frames a chunk (an 8 s video has two seams)."""
    return list(range(NUM_FRAMES - 1, num_frames - 1, EXTENSION_FRAMES))


def seam_jumps(centroids: np.ndarray) -> list[float]:
    """(T, 2) centroids, NaN where unseen -> the object's jump at each seam it is seen across:
    the centroid step there minus the median step elsewhere, so an object that moves 1.5 px a
    frame is not counted as jumping."""
    steps = np.linalg.norm(np.diff(centroids, axis=0), axis=1)  # (T-1,), NaN where unseen
    usual = np.nanmedian(steps)
    return [
        float(max(0.0, steps[i] - usual))
        for i in seam_steps(len(centroids))
        if np.isfinite(steps[i])
    ]


def extension_check(
    pipeline: TextToVideoPipeline, n: int = 50, seed: int = 0, batch: int = 8
) -> dict[str, Any]:
    """8 s videos (a 4 s clip, then extensions): the object's jump at every seam (`seam_jumps`:
    frames 31 to 32 and 58 to 59), and motion."""
    clips = [
        c
        for c in (get_clip("eval-seen", i, seed) for i in range(n * 3))
        if len(c.scene.objects) == 1
    ][:n]
    jumps, motion_ok = [], []
    for size in {c.scene.size for c in clips}:
        group = [c for c in clips if c.scene.size == size]
        for start in range(0, len(group), batch):
            part = group[start : start + batch]
            videos = pipeline(
                [c.caption for c in part], size=size, seed=[c.index for c in part], seconds=8
            ).videos
            for clip, video in zip(part, videos, strict=True):
                verdict = judge(video, scene_prompt(clip.scene))
                motion_ok.append(verdict.objects[0].found and verdict.objects[0].motion_ok)
                track = analyse(video).tracks.get(clip.scene.objects[0].colour)
                if track is not None:
                    jumps.extend(seam_jumps(track.centroids))
    return {
        "n": len(clips),
        "seam_jump_px_max": float(np.max(jumps)) if jumps else None,
        "seam_jump_px_mean": float(np.mean(jumps)) if jumps else None,
        "seams_over_4px": int(sum(j > 4 for j in jumps)),
        "seams_measured": len(jumps),
        "motion_adherence": float(np.mean(motion_ok)),
    }
