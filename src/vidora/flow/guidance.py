"""Classifier-free guidance on velocities."""

from __future__ import annotations

from torch import Tensor


def classifier_free_guidance(cond: Tensor, uncond: Tensor, scale: float) -> Tensor:
    """uncond + scale * (cond - uncond).

    The model was trained with the text sometimes dropped, so it predicts both a conditional
    and an unconditional velocity; pushing past the conditional one (scale > 1) trades variety
    for prompt adherence. scale = 1 returns `cond`, scale = 0 returns `uncond`.
    """
    if cond.shape != uncond.shape:
        raise ValueError(f"cond {tuple(cond.shape)} and uncond {tuple(uncond.shape)} differ")
    return uncond + scale * (cond - uncond)
