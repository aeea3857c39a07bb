"""Scoring a VAE alone: what any DiT on its latents can reach, and what its loss can see.

A DiT learns to make latents; the VAE decides two things about the videos that come of them.
Its round trip (encode, decode, judge as if generated) bounds every generated figure: an object
the VAE loses, no DiT draws. And the DiT's flow loss is a mean square in the latent, so an
attribute whose change barely moves the latent is one the loss barely charges for getting wrong.
`shape_salience` measures that for shape against colour, so a new VAE can be checked before a
DiT is trained on it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

import numpy as np
import torch

from vidora.eval.model import psnr
from vidora.pipelines.text_to_video import frames_to_tensor, tensor_to_frames
from vidora.world.judge import judge, scene_prompt
from vidora.world.render import render
from vidora.world.scene import Scene, WorldObject
from vidora.world.spec import NUM_FRAMES
from vidora.world.splits import get_clip

CLIP_FRAMES = NUM_FRAMES + 1
"""Frames encoded per clip (1 + 4k, as the VAE takes them); the last is dropped when judged."""


class Autoencoder(Protocol):
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def decode(self, z: torch.Tensor) -> torch.Tensor: ...


@torch.inference_mode()
def round_trip_check(
    vae: Autoencoder, n: int = 96, seed: int = 0, batch: int = 8
) -> dict[str, Any]:
    """Eval-seen clips encoded and decoded, then judged as if generated: the ceiling of a DiT.

    Returns the mean PSNR of the clips, whole-prompt adherence, and shape accuracy per prompted
    shape (squares suffer first: their corners are the finest detail in Shapes World).
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    clips = [get_clip("eval-seen", i, seed) for i in range(n)]
    psnrs, adheres = [], []
    shapes: dict[str, list[bool]] = {}
    for size in sorted({c.scene.size for c in clips}):
        group = [c for c in clips if c.scene.size == size]
        for start in range(0, len(group), batch):
            part = group[start : start + batch]
            frames = np.stack([c.frames(CLIP_FRAMES) for c in part])  # (b, T, H, W, 3)
            video = torch.stack([frames_to_tensor(f) for f in frames])  # (b, 3, T, H, W)
            decoded = vae.decode(vae.encode(video)[0])
            for clip, original, out in zip(part, frames, decoded, strict=True):
                back = tensor_to_frames(out)[:NUM_FRAMES]
                psnrs.append(psnr(back, original[:NUM_FRAMES]))
                verdict = judge(back, scene_prompt(clip.scene))
                adheres.append(verdict.adheres)
                for obj in verdict.objects:
                    shapes.setdefault(obj.shape, []).append(obj.found and obj.shape_ok)
    return {
        "n": n,
        "psnr_db": float(np.mean(psnrs)),
        "adherence": float(np.mean(adheres)),
        "shape_accuracy": float(np.mean([ok for oks in shapes.values() for ok in oks])),
        "shape_accuracy_by_shape": {s: float(np.mean(oks)) for s, oks in sorted(shapes.items())},
    }


SALIENCE_CASES = (("small", 0.0), ("small", 1.0), ("large", 0.0), ("large", 1.0))
"""(size, speed right in px/frame) of the red square whose shape and colour are changed."""


@torch.inference_mode()
def shape_salience(vae: Autoencoder) -> dict[str, float]:
    """How far a square turned circle moves the latent, against a red square turned orange, each
    per unit of pixel change: 1 means the flow loss charges a wrong shape as it charges a wrong
    colour of the same pixels; below 1, less (the latent hides the corners).

    One value per case (`SALIENCE_CASES`, a one-object 64x64 clip on black) and their mean.
    """

    def latent_and_pixels(obj: WorldObject) -> tuple[torch.Tensor, np.ndarray]:
        frames = render(Scene("64x64", "black", (obj,)), CLIP_FRAMES)
        return vae.encode(frames_to_tensor(frames)[None])[0], frames.astype(np.float64)

    def distance_per_pixel(a: WorldObject, b: WorldObject) -> float:
        (za, pa), (zb, pb) = latent_and_pixels(a), latent_and_pixels(b)
        return (za - zb).float().norm().item() / (float(np.linalg.norm(pa - pb)) / 127.5)

    ratios = {}
    for size, speed in SALIENCE_CASES:
        motion = "right" if speed else "still"
        square = WorldObject("red", "square", motion, size, 30.0, 30.0, speed, 0.0)
        shape = distance_per_pixel(square, dataclasses.replace(square, shape="circle"))
        colour = distance_per_pixel(square, dataclasses.replace(square, colour="orange"))
        ratios[f"{size} {motion}"] = shape / colour
    return {**ratios, "mean": float(np.mean(list(ratios.values())))}
