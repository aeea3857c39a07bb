"""The DiT over spacetime patches: every size and duration, adaLN-zero, conditioning."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vidora.models.dit import DIT_PRESETS, DiT
from vidora.models.layers import Rope3d


@pytest.fixture(scope="module")
def dit() -> DiT:
    torch.manual_seed(0)
    model = DiT(DIT_PRESETS["tiny"]())
    with torch.no_grad():  # move off the zero init so outputs depend on the inputs
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return model.eval()


def _inputs(batch: int, frames: int, h: int, w: int, z: int = 4, text_dim: int = 384):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, z, frames, h, w, generator=g)
    t = torch.rand(batch, generator=g)
    text = torch.randn(batch, 7, text_dim, generator=g)
    mask = torch.ones(batch, 7, dtype=torch.bool)
    mask[:, 5:] = False
    return x, t, text, mask


@pytest.mark.parametrize(
    ("frames", "h", "w"), [(9, 8, 8), (9, 8, 12), (9, 12, 8), (3, 8, 8), (1, 8, 8)]
)
def test_one_model_serves_every_size_and_duration(dit: DiT, frames: int, h: int, w: int) -> None:
    x, t, text, mask = _inputs(2, frames, h, w)
    with torch.no_grad():
        v = dit(x, t, text, mask)
    assert v.shape == x.shape and torch.isfinite(v).all()


def test_zero_init_predicts_zero_velocity() -> None:
    model = DiT(DIT_PRESETS["tiny"]())
    x, t, text, mask = _inputs(2, 3, 8, 8)
    with torch.no_grad():
        assert model(x, t, text, mask).abs().max().item() == 0.0


@pytest.mark.parametrize(
    ("part", "prefix", "output"),
    [
        ({"refine_width": 8}, "refine.", lambda m: m.refine.conv_out.weight),
        ({"pool_queries": 3}, "pool.", lambda m: m.pool.out.weight),
    ],
)
def test_a_new_part_leaves_a_trained_dit_as_it_was(dit: DiT, part, prefix, output) -> None:
    grown = DiT(replace(dit.cfg, **part))
    missing, unexpected = grown.load_state_dict(dit.state_dict(), strict=False)
    assert unexpected == [] and missing and all(m.startswith(prefix) for m in missing)
    x, t, text, mask = _inputs(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t, text, mask), dit(x, t, text, mask))
        output(grown).normal_(std=0.1)  # trained, it changes the velocity
        assert not torch.allclose(grown(x, t, text, mask), dit(x, t, text, mask))


def test_padding_tokens_are_ignored(dit: DiT) -> None:
    pooled = DiT(replace(dit.cfg, pool_queries=3))  # the prompt pool reads the tokens too
    pooled.load_state_dict(dit.state_dict(), strict=False)
    x, t, text, mask = _inputs(1, 3, 8, 8)
    other = text.clone()
    other[:, 5:] = 100.0  # only padded positions change
    with torch.no_grad():
        pooled.pool.out.weight.normal_(std=0.1)
        for model in (dit, pooled):
            torch.testing.assert_close(model(x, t, text, mask), model(x, t, other, mask))


def test_output_depends_on_text_time_and_conditioning_mask(dit: DiT) -> None:
    x, t, text, mask = _inputs(1, 3, 8, 8)
    cond = torch.tensor([[True, False, False]])
    with torch.no_grad():
        base = dit(x, t, text, mask)
        assert not torch.allclose(base, dit(x, t, text.flip(1), mask))
        assert not torch.allclose(base, dit(x, 1 - t, text, mask))
        assert not torch.allclose(base, dit(x, t, text, mask, cond))


def test_the_prompt_mean_can_be_left_out_per_sample_or_always(dit: DiT) -> None:
    # Training with mean_dropout leaves it out of some samples; prompt_mean=False, of all.
    without = DiT(replace(dit.cfg, prompt_mean=False))
    without.load_state_dict(dit.state_dict())
    x, t, text, mask = _inputs(2, 3, 8, 8)
    keep = torch.tensor([True, False])
    with torch.no_grad():
        mixed = dit(x, t, text, mask, keep_mean=keep)
        torch.testing.assert_close(mixed[0], dit(x, t, text, mask)[0])
        torch.testing.assert_close(mixed[1], without(x, t, text, mask)[1])
        assert not torch.allclose(mixed[1], dit(x, t, text, mask)[1])
        # Without the mean the words still reach it, through cross-attention.
        assert not torch.allclose(without(x, t, text, mask), without(x, t, text.flip(1), mask))


def test_patchify_round_trip(dit: DiT) -> None:
    x = torch.randn(2, 5, 9, 8, 12)
    grid = (9, 4, 6)
    torch.testing.assert_close(dit.unpatchify(dit.patchify(x), grid), x)


def test_rope_is_a_rotation_and_relative() -> None:
    rope = Rope3d(head_dim=16)
    freqs = rope.frequencies((3, 4, 5), torch.device("cpu"))
    assert freqs.shape == (60, 8)
    q = torch.randn(1, 1, 60, 16)
    rotated = Rope3d.apply(q, freqs)
    torch.testing.assert_close(rotated.norm(dim=-1), q.norm(dim=-1))  # rotations keep length
    # The same vector at every position: q.k after rotation depends only on the offset.
    same = torch.randn(16).expand(1, 1, 60, 16)
    r = Rope3d.apply(same, freqs)[0, 0].view(3, 4, 5, 16)
    dot = lambda a, b: (a * b).sum().item()  # noqa: E731
    assert dot(r[0, 0, 0], r[1, 1, 1]) == pytest.approx(dot(r[1, 2, 3], r[2, 3, 4]), rel=1e-4)


def test_bf16_autocast_has_no_nan(dit: DiT) -> None:
    x, t, text, mask = _inputs(2, 3, 8, 8)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        v = dit(x, t, text, mask)
    assert torch.isfinite(v.float()).all()
