"""The DiT stage's held-out measures: the flow loss and the word gaps, against closed forms."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import nn

from vidora.pipelines import TextToVideoPipeline
from vidora.train.config import DataConfig
from vidora.train.validation import (
    ATTRIBUTES,
    GAP_TIMES,
    TIMES,
    FlowValidation,
    WordGaps,
    validation_data,
)
from vidora.world.captions import SHAPE_WORDS, WORDINGS, parse_prompt

SHAPES = DataConfig(sizes=("64x64", "96x64"), frames=(33,), frame_weights=(1.0,))


class _Oracle(nn.Module):
    """Knows the clean latents of each clip (by its batch size), so it predicts the exact
    velocity of the straight path through x_t: (data - x_t) / (1 - t) = data - noise."""

    def __init__(self, validation: FlowValidation):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))  # gives the model a device
        self.data = {len(g.latents): g.latents for g in validation.groups}

    def forward(self, x, t, text, text_mask):  # noqa: ANN001, ANN201 - the DiT's signature
        data = self.data[len(x)]
        return (data - x) / (1 - t)[:, None, None, None, None]


class _Still(nn.Module):
    """Predicts zero velocity everywhere."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))

    def forward(self, x, t, text, text_mask):  # noqa: ANN001, ANN201 - the DiT's signature
        return torch.zeros_like(x)


@pytest.fixture(scope="module")
def pipe() -> TextToVideoPipeline:
    return TextToVideoPipeline.tiny_random()


@pytest.fixture(scope="module")
def shapes_validation(pipe: TextToVideoPipeline) -> FlowValidation:
    data = validation_data(SHAPES, "")
    return FlowValidation.build(data, 5, pipe.vae, pipe.text_encoder)


def test_clips_are_spread_over_the_sizes(shapes_validation: FlowValidation) -> None:
    assert shapes_validation.clips == 5
    aspect = [g.latents.shape[-1] / g.latents.shape[-2] for g in shapes_validation.groups]
    assert aspect == [1.0, 1.5]  # 64x64, then 96x64
    assert [len(g.latents) for g in shapes_validation.groups] == [3, 2]
    assert all(len(g.noises) == len(TIMES) for g in shapes_validation.groups)


def test_the_loss_matches_its_closed_forms(shapes_validation: FlowValidation) -> None:
    assert shapes_validation.loss(_Oracle(shapes_validation)) == pytest.approx(0.0, abs=1e-6)
    # Zero velocity leaves the whole target: the clip-weighted mean of (data - noise)^2.
    groups = shapes_validation.groups
    expected = sum(
        len(g.latents) * (g.latents - noise).square().mean().item()
        for g in groups
        for noise in g.noises
    ) / (len(TIMES) * shapes_validation.clips)
    assert shapes_validation.loss(_Still()) == pytest.approx(expected, rel=1e-5)


def test_the_same_model_measures_the_same_and_leaves_its_mode(
    shapes_validation: FlowValidation, pipe: TextToVideoPipeline
) -> None:
    dit = pipe.dit.train()
    with torch.no_grad():  # the output layer starts at zero: make the velocity depend on x_t
        dit.final.linear.weight.normal_(std=0.1)
    first = shapes_validation.loss(dit)
    assert shapes_validation.loss(dit) == first  # the same clips, noise and times each time
    assert dit.training
    with torch.no_grad():
        dit.final.linear.bias.add_(0.1)
    assert shapes_validation.loss(dit) != first


def test_held_out_clips_come_from_eval_seen_or_a_named_folder(
    pipe: TextToVideoPipeline, tmp_path: Path, noise_folder: Callable[[str, int], Path]
) -> None:
    assert validation_data(SHAPES, "").split == "eval-seen"
    trained = DataConfig(source=str(tmp_path / "mine"), sizes=("64x64",))
    assert validation_data(trained, "") is None  # every clip of a folder is trained on

    held_out = noise_folder("held-out", 2)
    data = validation_data(trained, str(held_out))
    validation = FlowValidation.build(data, 8, pipe.vae, pipe.text_encoder)
    assert validation.clips == 2  # the folder's two clips, each once


class _HearsOneWord(nn.Module):
    """Predicts half the exact velocity from a true prompt, and nothing from a prompt whose
    `attribute` is wrong: a model that follows that word alone, with known losses."""

    def __init__(self, gaps: WordGaps, attribute: str):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1))
        self.groups = {g.latents.shape[-2:]: g for g in gaps.groups}  # by latent (h, w)
        self.attribute = attribute

    def forward(self, x, t, text, text_mask):  # noqa: ANN001, ANN201 - the DiT's signature
        g = self.groups[x.shape[-2:]]
        exact = (g.latents - x) / (1 - t)[:, None, None, None, None]  # data - noise
        if torch.equal(text, g.wrong_text[self.attribute][0]):
            return torch.zeros_like(x)
        return 0.5 * exact


@pytest.fixture(scope="module", params=WORDINGS)
def word_gaps(request: pytest.FixtureRequest, pipe: TextToVideoPipeline) -> WordGaps:
    return WordGaps.build(
        6, pipe.vae, pipe.text_encoder, sizes=("64x64", "96x64"), wording=request.param
    )


def test_word_gap_prompts_differ_in_one_attribute_alone(word_gaps: WordGaps) -> None:
    assert [len(g.latents) for g in word_gaps.groups] == [3, 3]
    assert all(len(g.noises) == len(GAP_TIMES) for g in word_gaps.groups)
    for g in word_gaps.groups:
        for i, caption in enumerate(g.captions):
            (true,) = parse_prompt(caption).objects
            assert true.size is not None  # the wording names all four attributes
            wording = next(w for w in WORDINGS if _names_shape_in(caption, true.shape, w))
            assert wording == word_gaps.wording, caption
            for attribute in ATTRIBUTES:
                (wrong,) = parse_prompt(g.wrong_captions[attribute][i]).objects
                differs = {a for a in ATTRIBUTES if getattr(wrong, a) != getattr(true, a)}
                assert differs == {attribute}, (caption, g.wrong_captions[attribute][i])


def _names_shape_in(caption: str, shape: str, wording: str) -> bool:
    """Whether the caption names `shape` with a word of `wording` (the two share no shape word)."""
    return any(re.search(rf"\b{word}\b", caption) for word in SHAPE_WORDS[wording][shape])


def test_held_out_word_gaps_are_the_same_clips_and_noise() -> None:
    pipe = TextToVideoPipeline.tiny_random()
    train, heldout = (
        WordGaps.build(3, pipe.vae, pipe.text_encoder, sizes=("64x64",), wording=w)
        for w in WORDINGS
    )
    (a,), (b,) = train.groups, heldout.groups
    assert torch.equal(a.latents, b.latents)
    assert all(torch.equal(x, y) for x, y in zip(a.noises, b.noises, strict=True))
    assert a.captions != b.captions


def test_word_gaps_match_their_closed_forms(word_gaps: WordGaps) -> None:
    deaf = word_gaps.gaps(_Still())  # the same prediction whatever the prompt says
    assert deaf == dict.fromkeys(ATTRIBUTES, 0.0)
    # Half the exact velocity leaves a quarter of the squared target; none leaves all of it.
    heard = word_gaps.gaps(_HearsOneWord(word_gaps, "motion"))
    assert heard == pytest.approx({"colour": 0.0, "shape": 0.0, "size": 0.0, "motion": 300.0})
