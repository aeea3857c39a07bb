"""Held-out flow loss for the DiT stage: the same clips, noise and times at every check.

The training loss jumps from step to step with each batch's clips and timesteps, so a slow
improvement hides in its noise. This loss is measured on clips the run never trains on, with
noise and flow times fixed once, so its changes are the model's alone: it shows whether a long
run is still learning long before a judge can tell two checkpoints apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import nn

from vidora.flow import flow_loss, interpolate
from vidora.models.text_encoder import TextEncoder
from vidora.models.vae import VideoVAE
from vidora.train.config import DataConfig
from vidora.train.data import encode_clips, make_source, ordered_clips

TIMES = (0.2, 0.35, 0.5, 0.65, 0.8)
"""Flow times measured (0 noise, 1 data): the middle of the path, where the loss is informative;
at the ends it is dominated by what no model can know (the noise, or where objects start)."""


@dataclass
class _Group:
    """Held-out clips of one size, with their prompt states and one fixed noise per time."""

    latents: torch.Tensor  # (B, z, F, h, w)
    text: torch.Tensor  # (B, L, text_dim)
    text_mask: torch.Tensor  # (B, L)
    noises: list[torch.Tensor]  # len(TIMES) x (B, z, F, h, w)


class FlowValidation:
    """The mean flow-matching loss of a model over fixed held-out clips, noise and times."""

    def __init__(self, groups: list[_Group]):
        if not groups:
            raise ValueError("a validation set needs at least one clip")
        self.groups = groups

    @property
    def clips(self) -> int:
        return sum(len(g.latents) for g in self.groups)

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        data: DataConfig,
        clips: int,
        vae: VideoVAE,
        text_encoder: TextEncoder,
        seed: int = 0,
    ) -> FlowValidation:
        """Encode `clips` held-out clips, spread over the sizes of `data`.

        `data` names where they come from: a Shapes World split (the stage passes `eval-seen`,
        whose scenes never appear in training) or a dataset folder kept out of training.
        """
        source = make_source(data)
        sizes = list(getattr(source, "by_size", data.sizes))
        generator = torch.Generator().manual_seed(seed)
        groups = []
        for i, size in enumerate(sizes):
            count = clips // len(sizes) + (i < clips % len(sizes))
            if count == 0:
                continue
            frames, captions, _ = ordered_clips(source, size, [], count)
            latents = encode_clips(vae, frames).float().cpu()  # (B, z, F, h, w)
            text, text_mask = text_encoder.encode(captions)
            noises = [torch.randn(latents.shape, generator=generator) for _ in TIMES]
            groups.append(_Group(latents, text.cpu(), text_mask.cpu(), noises))
        return cls(groups)

    @torch.no_grad()
    def loss(self, model: nn.Module) -> float:
        """The clip-weighted mean loss over every group and time, the model in eval mode."""
        device = next(model.parameters()).device
        was_training = model.training
        model.eval()
        total, count = 0.0, 0
        for g in self.groups:
            b = len(g.latents)
            for t, noise in zip(TIMES, g.noises, strict=True):
                times = torch.full((b,), t)
                x_t = interpolate(g.latents, noise, times)
                velocity = model(
                    x_t.to(device), times.to(device), g.text.to(device), g.text_mask.to(device)
                )
                total += b * flow_loss(velocity.float().cpu(), g.latents, noise).item()
                count += b
        model.train(was_training)
        return total / count


def validation_data(data: DataConfig, val_source: str) -> DataConfig | None:
    """Where the held-out clips come from, or None when there are none to use.

    '' picks the default: Shapes World's eval-seen split for a Shapes World run (no training
    scene is in it), nothing for a dataset folder (its clips are all trained on). A path names a
    dataset folder held out from training.
    """
    if val_source:
        return replace(data, source=val_source)
    if data.source == "shapes":
        return replace(data, split="eval-seen")
    return None
