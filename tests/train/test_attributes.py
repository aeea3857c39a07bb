"""The attribute loss: each token's object labels from the world, and a head that reads them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vidora.models.dit import DIT_PRESETS, DiT
from vidora.train.attributes import ATTRIBUTES, token_labels
from vidora.train.dit import attribute_loss
from vidora.world.render import object_map, render
from vidora.world.scene import Scene, WorldObject

SHAPE, MOTION = list(ATTRIBUTES).index("shape"), list(ATTRIBUTES).index("motion")


def _object(shape: str, x: float, y: float, vx: float = 0.0, **kw: str) -> WorldObject:
    fields = {"colour": "red", "motion": "still", "size": "large", **kw}
    return WorldObject(shape=shape, x=x, y=y, vx=vx, vy=0.0, **fields)


def test_the_object_map_marks_the_pixels_render_paints() -> None:
    scene = Scene("96x64", "navy", (_object("square", 20, 20), _object("circle", 70, 40)))
    index = object_map(scene, 4)  # (T, H, W)
    painted = (render(scene, 4) != np.array([20, 25, 70])).any(-1)
    assert np.array_equal(index >= 0, painted)
    assert (index == 0).sum() == 4 * 18 * 18 and index[0, 20, 20] == 0 and index[0, 40, 70] == 1


def test_a_still_square_labels_the_four_tokens_it_covers_in_every_frame() -> None:
    scene = Scene("64x64", "black", (_object("square", 32, 32),))  # 18 px square at the centre
    labels = token_labels(scene, token_px=16)  # (A, F, rows, columns)
    assert labels.shape == (len(ATTRIBUTES), 9, 4, 4)
    covered = np.zeros((4, 4), dtype=bool)
    covered[1:3, 1:3] = True
    for frame in labels[SHAPE]:
        assert np.array_equal(frame >= 0, covered)  # its 1-px rims on the others: too little
    assert (labels[SHAPE][:, covered] == 1).all()  # SHAPES.index("square")


def test_each_token_is_labelled_with_the_object_covering_most_of_it() -> None:
    moving = _object("triangle", 40, 40, vx=-1.0, motion="left", size="small")
    scene = Scene("64x64", "black", (_object("circle", 12, 12), moving))
    labels = token_labels(scene, token_px=16)
    assert labels[SHAPE, 0, 0, 0] == 0 and labels[MOTION, 0, 0, 0] == 4  # circle, still
    assert labels[SHAPE, 0, 2, 2] == 2 and labels[MOTION, 0, 2, 2] == 0  # triangle, left
    # 32 frames later the triangle has moved 32 px left: its token is now in column 0.
    assert labels[SHAPE, -1, 2, 0] == 2 and labels[SHAPE, -1, 2, 2] == -1
    carried = token_labels(scene, token_px=16, start=20)  # frames 20 to 51
    assert carried[SHAPE, 0, 2, 1] == 2 and carried[SHAPE, -1, 2, 2] == -1


def test_the_attribute_loss_trains_the_blocks_below_the_head_only() -> None:
    classes = tuple(map(len, ATTRIBUTES.values()))
    cfg = DIT_PRESETS["tiny"]()
    dit = DiT(type(cfg)(**{**cfg.to_dict(), "attribute_classes": classes, "attribute_block": 1}))
    x = torch.randn(2, cfg.latent_channels, 3, 8, 8)
    text, mask = torch.randn(2, 5, cfg.text_dim), torch.ones(2, 5, dtype=torch.bool)
    velocity, logits = dit(x, torch.rand(2), text, mask, attributes=True)
    assert velocity.shape == x.shape and logits.shape == (2, 3 * 4 * 4, sum(classes))
    labels = torch.randint(-1, 2, (2, len(classes), 3, 4, 4))
    stats: dict[str, float] = {}
    attribute_loss(logits, labels, stats).backward()
    assert set(stats) == {f"ce_{name}" for name in ATTRIBUTES}
    # Below the head: charged, the cross-attention that brings the prompt's words included.
    assert dit.blocks[0].cross.out.weight.grad.abs().sum() > 0
    assert dit.blocks[1].cross.out.weight.grad is None  # above it: untouched
    with pytest.raises(ValueError, match="token labels for"):
        attribute_loss(logits, labels[..., :2], stats)
    with pytest.raises(ValueError, match="no attribute head"):
        DiT(cfg)(x, torch.rand(2), text, mask, attributes=True)


def test_no_labelled_token_costs_nothing() -> None:
    logits = torch.randn(1, 16, sum(map(len, ATTRIBUTES.values())), requires_grad=True)
    labels = torch.full((1, len(ATTRIBUTES), 1, 4, 4), -1)
    assert attribute_loss(logits, labels).item() == 0.0
