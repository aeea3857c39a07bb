"""Held-out measures for the DiT stage: the same clips, noise and times at every check.

The training loss jumps from step to step with each batch's clips and timesteps, so a slow
improvement hides in its noise. `FlowValidation` measures the loss on clips the run never trains
on, with noise and flow times fixed once, so its changes are the model's alone: it shows whether
a long run is still learning long before a judge can tell two checkpoints apart. `WordGaps`
measures, the same way, whether it is learning to follow each word of a prompt.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import nn

from vidora.flow import flow_loss, interpolate
from vidora.models.text_encoder import TextEncoder
from vidora.models.vae import VideoVAE
from vidora.train.config import DataConfig
from vidora.train.data import encode_clips, make_source, ordered_clips
from vidora.world.captions import Wording
from vidora.world.scene import Scene
from vidora.world.spec import COLOURS, MOTIONS, OBJECT_SIZES, SHAPES, SIZES

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


class _HeldOutClips:
    """Held-out clips in groups of one size each (`groups[i].latents`: (B, z, F, h, w))."""

    def __init__(self, groups: list):
        if not groups:
            raise ValueError(f"{type(self).__name__} needs at least one clip")
        self.groups = groups

    @property
    def clips(self) -> int:
        return sum(len(g.latents) for g in self.groups)


class FlowValidation(_HeldOutClips):
    """The mean flow-matching loss of a model over fixed held-out clips, noise and times."""

    groups: list[_Group]

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
        total, count = 0.0, 0
        with _eval_mode(model):
            for g in self.groups:
                for t, noise in zip(TIMES, g.noises, strict=True):
                    total += _summed_loss(model, g.latents, noise, t, (g.text, g.text_mask))
                    count += len(g.latents)
        return total / count


@contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    """The model in eval mode for the block, then back in the mode it was in."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _summed_loss(
    model: nn.Module,
    latents: torch.Tensor,
    noise: torch.Tensor,
    t: float,
    text: tuple[torch.Tensor, torch.Tensor],
) -> float:
    """The flow loss at time `t` of clips of one size (B, z, F, h, w) with their prompt states
    (B, L, text_dim) and mask (B, L), summed over the clips (mean per clip, times B)."""
    device = next(model.parameters()).device
    times = torch.full((len(latents),), t)
    x_t = interpolate(latents, noise, times)
    velocity = model(x_t.to(device), times.to(device), *(s.to(device) for s in text))
    return len(latents) * flow_loss(velocity.float().cpu(), latents, noise).item()


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


# ---------------------------------------------------------------------------------------
# Word gaps: does the model listen to each word of the prompt?
# ---------------------------------------------------------------------------------------

GAP_TIMES = (0.15, 0.3, 0.5)
"""Flow times of the word gaps: the first half of the path, where the prompt decides what is
drawn and where; nearer the data the noisy video itself shows it."""

ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "colour": tuple(COLOURS),
    "shape": SHAPES,
    "size": tuple(OBJECT_SIZES),
    "motion": MOTIONS,
}
"""What a prompt says of its object, each with the values it can take."""

_WORDING_TRIES = 64
"""Caption seeds tried for one wording that names every attribute (size words are optional)."""


@dataclass
class _GapGroup:
    """Single-object held-out clips of one size: their prompt as written, and as miswritten."""

    latents: torch.Tensor  # (B, z, F, h, w)
    noises: list[torch.Tensor]  # len(GAP_TIMES) x (B, z, F, h, w)
    captions: list[str]
    wrong_captions: dict[str, list[str]]  # attribute -> B captions, that attribute replaced
    text: tuple[torch.Tensor, torch.Tensor]  # (B, L, text_dim), (B, L)
    wrong_text: dict[str, tuple[torch.Tensor, torch.Tensor]]


class WordGaps(_HeldOutClips):
    """How much a model's held-out flow loss rises when the prompt names one thing wrongly.

    Each single-object clip's caption is written twice in the same words: as it is, and with the
    object's colour, shape, size or motion replaced by another value. A model that follows a word
    predicts the clip worse from the wrong prompt; one that ignores it does equally well. The
    gap, in percent of the true prompt's loss, shows a model beginning to hear a word thousands
    of steps before a judge can see it in its videos.
    """

    groups: list[_GapGroup]

    def __init__(self, groups: list[_GapGroup], wording: Wording = "train"):
        super().__init__(groups)
        self.wording = wording

    @classmethod
    @torch.no_grad()
    def build(
        cls,
        clips: int,
        vae: VideoVAE,
        text_encoder: TextEncoder,
        sizes: tuple[str, ...] = SIZES,
        seed: int = 0,
        wording: Wording = "train",
    ) -> WordGaps:
        """`clips` single-object clips of Shapes World's eval-seen split (never trained on),
        spread over `sizes` as evenly as they divide, with their captions and fixed noise.

        `wording="heldout"` writes the captions in the held-out wording, whose words no training
        caption uses: its gaps show whether the model hears those words (eval-wording's question)
        on the same clips and noise."""
        from vidora.world.splits import clip_size, get_clip

        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(seed)
        wanted = {s: clips // len(sizes) + (i < clips % len(sizes)) for i, s in enumerate(sizes)}
        chosen: dict[str, list] = {size: [] for size in sizes}
        index = 0
        while any(len(chosen[s]) < wanted[s] for s in sizes):
            size = clip_size("eval-seen", index)
            if size in chosen and len(chosen[size]) < wanted[size]:
                clip = get_clip("eval-seen", index)
                if len(clip.scene.objects) == 1:
                    chosen[size].append(clip)
            index += 1
        groups = []
        for size_clips in chosen.values():
            if not size_clips:
                continue
            captions, wrong = [], {a: [] for a in ATTRIBUTES}
            for clip in size_clips:
                true, swapped = _caption_pair(clip.scene, rng, wording)
                captions.append(true)
                for attribute, caption in swapped.items():
                    wrong[attribute].append(caption)
            latents = encode_clips(vae, [c.frames() for c in size_clips]).float().cpu()
            groups.append(
                _GapGroup(
                    latents=latents,
                    noises=[torch.randn(latents.shape, generator=generator) for _ in GAP_TIMES],
                    captions=captions,
                    wrong_captions=wrong,
                    text=_encode(text_encoder, captions),
                    wrong_text={a: _encode(text_encoder, c) for a, c in wrong.items()},
                )
            )
        return cls(groups, wording)

    @torch.no_grad()
    def gaps(self, model: nn.Module) -> dict[str, float]:
        """Per attribute, the percent by which the wrong prompt's loss exceeds the true one's."""
        true_total = 0.0
        wrong_total = dict.fromkeys(ATTRIBUTES, 0.0)
        with _eval_mode(model):
            for g in self.groups:
                for t, noise in zip(GAP_TIMES, g.noises, strict=True):
                    true_total += _summed_loss(model, g.latents, noise, t, g.text)
                    for a in ATTRIBUTES:
                        wrong_total[a] += _summed_loss(model, g.latents, noise, t, g.wrong_text[a])
        return {a: 100.0 * (wrong_total[a] / true_total - 1.0) for a in ATTRIBUTES}


def _caption_pair(
    scene: Scene, rng: np.random.Generator, wording: Wording
) -> tuple[str, dict[str, str]]:
    """A caption of a one-object scene, and per attribute the same words with that attribute
    replaced by a random other value (a wording is drawn until it names all four, and each
    swapped caption asks for what the true one does with that attribute alone changed: in a
    wording whose synonym lists differ in length, the same seed can pick other words)."""
    from vidora.world.captions import parse_prompt, write_caption

    (obj,) = scene.objects
    others = {
        attribute: str(rng.choice([v for v in values if v != getattr(obj, attribute)]))
        for attribute, values in ATTRIBUTES.items()
    }
    wrong_scenes = {
        attribute: replace(scene, objects=(replace(obj, **{attribute: other}),))
        for attribute, other in others.items()
    }
    for _ in range(_WORDING_TRIES):
        words = int(rng.integers(2**31))
        true = write_caption(scene, np.random.default_rng(words), wording)
        swapped = {
            a: write_caption(wrong, np.random.default_rng(words), wording)
            for a, wrong in wrong_scenes.items()
        }
        (asked,) = parse_prompt(true).objects
        if asked.size is not None and all(
            parse_prompt(caption).objects == (replace(asked, **{a: others[a]}),)
            for a, caption in swapped.items()
        ):
            return true, swapped
    raise RuntimeError(f"no wording of {true!r} names all of {', '.join(ATTRIBUTES)}")


def _encode(text_encoder: TextEncoder, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    text, mask = text_encoder.encode(captions)
    return text.cpu(), mask.cpu()
