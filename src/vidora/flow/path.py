"""The training side of rectified flow: where x_t lies, what velocity to predict, which t to
train on, and the masked loss. Time runs from noise (t = 0) to data (t = 1); see
`vidora.flow`."""

from __future__ import annotations

import math

import torch
from torch import Tensor

TIMESTEP_DISTRIBUTIONS = ("logit_normal", "uniform")
"""Choices for `sample_timesteps(distribution=...)`."""


def _per_sample(t: Tensor, like: Tensor) -> Tensor:
    """Reshape a (B,) time vector to (B, 1, 1, ...) so it broadcasts over one sample."""
    if t.ndim == 0:
        return t
    if t.ndim != 1 or t.shape[0] != like.shape[0]:
        raise ValueError(
            f"t must be a scalar or have shape (B,) = ({like.shape[0]},); got {tuple(t.shape)}"
        )
    return t.reshape(-1, *([1] * (like.ndim - 1)))


def interpolate(data: Tensor, noise: Tensor, t: Tensor | float) -> Tensor:
    """x_t = (1 - t) * noise + t * data, with t a scalar or one time per batch item (B,)."""
    if data.shape != noise.shape:
        raise ValueError(f"data {tuple(data.shape)} and noise {tuple(noise.shape)} differ")
    t = _per_sample(torch.as_tensor(t, dtype=data.dtype, device=data.device), data)
    return (1 - t) * noise + t * data


def velocity_target(data: Tensor, noise: Tensor) -> Tensor:
    """v = data - noise: the (constant in t) velocity along the straight path."""
    if data.shape != noise.shape:
        raise ValueError(f"data {tuple(data.shape)} and noise {tuple(noise.shape)} differ")
    return data - noise


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Warp t toward noise: t' = t / (t + shift * (1 - t)).

    shift = 1 is the identity; shift > 1 spends more of [0, 1] near t = 0, because bigger
    pictures and longer clips keep more of their signal at a given noise level (SD3 sec. 5.3).
    The endpoints stay fixed and the map is monotone, so it can warp both training times and
    a sampler's grid.
    """
    if not shift > 0:
        raise ValueError(f"shift must be > 0; got {shift}")
    if shift == 1.0:
        return t
    return t / (t + shift * (1 - t))


def resolution_shift(num_tokens: int, base_tokens: int, base_shift: float = 1.0) -> float:
    """The shift for a sample with `num_tokens` latent tokens, given one tuned at `base_tokens`.

    SD3's rule: noise at the same level destroys less of a larger sample, so the shift grows
    with sqrt(tokens / base tokens).
    """
    if num_tokens <= 0 or base_tokens <= 0:
        raise ValueError(
            f"token counts must be positive; got num_tokens={num_tokens}, base_tokens={base_tokens}"
        )
    return base_shift * math.sqrt(num_tokens / base_tokens)


def sample_timesteps(
    batch: int,
    generator: torch.Generator | None = None,
    distribution: str = "logit_normal",
    mean: float = 0.0,
    std: float = 1.0,
    shift: float = 1.0,
    device: torch.device | str | None = None,
) -> Tensor:
    """Training times t in (0, 1), shape (batch,), float32.

    logit_normal: t = sigmoid(u), u ~ N(mean, std) -- SD3's choice for rectified flow; it
    trains most on the middle of the path, where the velocity is hardest to predict. A positive
    `mean` leans toward data, a negative one toward noise. uniform: t ~ U(0, 1). Either is
    then warped by `shift_time(t, shift)`.
    """
    if batch <= 0:
        raise ValueError(f"batch must be positive; got {batch}")
    if not std > 0:
        raise ValueError(f"std must be > 0; got {std}")
    if distribution == "logit_normal":
        u = torch.randn(batch, generator=generator, device=device)
        t = torch.sigmoid(u * std + mean)
    elif distribution == "uniform":
        t = torch.rand(batch, generator=generator, device=device)
    else:
        raise ValueError(
            f"unknown timestep distribution {distribution!r}; choose one of "
            f"{', '.join(TIMESTEP_DISTRIBUTIONS)}"
        )
    return shift_time(t, shift)


def flow_loss(
    pred_velocity: Tensor,
    data: Tensor,
    noise: Tensor,
    loss_mask: Tensor | None = None,
) -> Tensor:
    """Mean squared error between the predicted and the target velocity.

    `loss_mask` (broadcastable to the data, 1 = counts, 0 = ignored) removes the clean
    conditioning frames from the loss: the model is given them, so it has nothing to predict
    there. Other non-negative values weight the positions: the loss is their weighted mean, and
    a mask with none counting gives 0.
    The sum runs in float32 so a bf16 prediction does not lose the small terms.
    """
    target = velocity_target(data, noise)
    if pred_velocity.shape != target.shape:
        raise ValueError(
            f"pred_velocity {tuple(pred_velocity.shape)} must match data {tuple(target.shape)}"
        )
    sq = (pred_velocity.float() - target.float()).square()
    if loss_mask is None:
        return sq.mean()
    try:
        mask = torch.broadcast_to(loss_mask.to(device=sq.device, dtype=sq.dtype), sq.shape)
    except RuntimeError as err:
        raise ValueError(
            f"loss_mask {tuple(loss_mask.shape)} does not broadcast to {tuple(sq.shape)}"
        ) from err
    # An all-zero mask has an all-zero numerator: clamping the count keeps 0 / 0 out.
    return (sq * mask).sum() / mask.sum().clamp_min(torch.finfo(sq.dtype).tiny)
