"""The grounding loss: each object's phrase, and where the cross-attention reads it."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from vidora.models.dit import DIT_PRESETS, DiT
from vidora.models.text_encoder import TextEncoder
from vidora.train.grounding import Grounding, ground_phrases, grounding_loss, phrase_colours
from vidora.world.captions import parse_prompt, write_caption, write_caption_with_spans
from vidora.world.spec import COLOURS
from vidora.world.splits import get_clip

RED, BLUE = list(COLOURS).index("red"), list(COLOURS).index("blue")


@pytest.mark.parametrize("wording", ["train", "heldout"])
def test_each_span_is_its_objects_phrase_and_the_caption_is_unchanged(wording: str) -> None:
    two = 0
    for key in range(60):
        scene = get_clip("train", key, 3).scene
        caption, spans = write_caption_with_spans(scene, np.random.default_rng(key), wording)
        assert caption == write_caption(scene, np.random.default_rng(key), wording)
        assert len(spans) == len(scene.objects)
        for obj, (start, end) in zip(scene.objects, spans, strict=True):
            # The phrase alone reads back as its object: colour, shape and motion.
            (read,) = parse_prompt(caption[start:end]).objects
            assert (read.colour, read.shape, read.motion) == (obj.colour, obj.shape, obj.motion)
        if len(spans) == 2:
            two += 1
            assert spans[0][1] <= spans[1][0]  # in order, apart
    assert two > 10


def test_phrase_tokens_are_the_tokens_inside_each_phrase() -> None:
    encoder = TextEncoder.tiny_random()
    captions = ["a red disc moving left and a blue box rising.", "a red dot sinking", ""]
    spans = [((0, 22), (27, 44)), ((0, 17),), ()]
    phrases = [phrase_colours(["red", "blue"], spans[0]), phrase_colours(["red"], spans[1]), ()]
    grounding = ground_phrases(phrases, encoder.token_offsets(captions), [True, True, False])
    text, _ = encoder.encode(captions)
    assert grounding.words.shape == (3, 2, text.shape[1])  # the batch's padded tokens
    tokens = [encoder.tokenizer.id_to_token(i) for i in encoder.token_ids(captions[0])]
    first = [t for t, w in zip(tokens, grounding.words[0, 0].tolist(), strict=True) if w]
    second = [t for t, w in zip(tokens, grounding.words[0, 1].tolist(), strict=True) if w]
    assert first == ["a", "red", "disc", "moving", "left"]
    assert second == ["a", "blue", "box", "rising"]  # not "and", not [CLS] or "."
    assert grounding.colours.tolist() == [[RED, BLUE], [RED, -1], [-1, -1]]
    dropped = ground_phrases(phrases[:1], encoder.token_offsets(captions[:1]), [False])
    assert not dropped.words.any()  # a caption dropped for guidance names nothing


def _labels(colours: list[list[int]]) -> torch.Tensor:
    """Labels (B, A=1, F=1, rows=1, columns=N) from each token's colour."""
    return torch.tensor(colours)[:, None, None, None, :]


def test_the_loss_is_the_share_read_outside_the_object() -> None:
    # One clip, 4 tokens: red covers tokens 0-1, blue token 3. Text: 3 tokens, red's phrase
    # is token 0, blue's token 1.
    labels = _labels([[RED, RED, -1, BLUE]])
    grounding = Grounding(
        words=torch.tensor([[[True, False, False], [False, True, False]]]),
        colours=torch.tensor([[RED, BLUE]]),
    )
    bound = torch.zeros(1, 1, 4, 3)  # (depth, B, N, L)
    bound[0, 0, :2, 0] = 0.5  # red's word read by red's tokens only
    bound[0, 0, 3, 1] = 0.5  # blue's by blue's
    bound[..., 2] = 1.0 - bound.sum(-1)  # the rest on the third token
    assert grounding_loss(bound, grounding, labels).item() == pytest.approx(0.0)
    swapped = bound[..., [1, 0, 2]]  # each object reads the other's words
    assert grounding_loss(swapped, grounding, labels).item() == pytest.approx(1.0)
    uniform = torch.full((1, 1, 4, 3), 1 / 3)  # red covers 2 tokens of 4, blue 1 of 4
    assert grounding_loss(uniform, grounding, labels).item() == pytest.approx(1 - 0.75 / 2)
    # Blue out of view: its phrase has nowhere to be read and is left out.
    hidden = _labels([[RED, RED, -1, -1]])
    assert grounding_loss(uniform, grounding, hidden).item() == pytest.approx(0.5)
    nobody = _labels([[-1, -1, -1, -1]])
    assert grounding_loss(uniform.requires_grad_(), grounding, nobody).item() == 0.0
    with pytest.raises(ValueError, match="token labels for"):
        grounding_loss(uniform, grounding, labels[..., :3])


def test_cross_maps_leave_the_velocity_and_the_loss_trains_the_cross_attention() -> None:
    torch.manual_seed(0)
    cfg = replace(DIT_PRESETS["tiny"](), text_dim=32)
    dit = DiT(cfg)
    with torch.no_grad():  # off the zero init, so every part is read
        for weight in dit.parameters():
            weight.add_(torch.randn_like(weight) * 0.1)
    x, t = torch.randn(2, cfg.latent_channels, 3, 8, 8), torch.rand(2)
    text, mask = torch.randn(2, 5, 32), torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]]).bool()
    velocity, maps = dit(x, t, text, mask, cross_maps=True)
    assert torch.allclose(velocity, dit(x, t, text, mask), atol=1e-5)
    assert maps.shape == (cfg.depth, 2, 3 * 4 * 4, 5)
    assert torch.allclose(maps.sum(-1), torch.ones(()))  # each token's weights over the words
    assert maps[:, 0, :, 3:].abs().max() == 0  # padding is never read
    with pytest.raises(ValueError, match="not both"):
        dit(x, t, text, mask, attributes=True, cross_maps=True)

    colours = torch.full((2, 3, 4, 4), -1)
    colours[:, :, :2, :2] = RED  # red in the top-left tokens, blue in the bottom-right
    colours[:, :, 2:, 2:] = BLUE
    labels = colours[:, None]  # (B, A=1, F, rows, columns)
    words = torch.zeros(2, 2, 5, dtype=torch.bool)
    words[:, 0, 1], words[:, 1, 2] = True, True
    grounding = Grounding(words, torch.tensor([[RED, BLUE], [RED, BLUE]]))
    optimizer = torch.optim.Adam(dit.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = grounding_loss(dit(x, t, text, mask, cross_maps=True)[1], grounding, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
