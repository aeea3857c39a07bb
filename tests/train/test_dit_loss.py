"""The DiT's training loss: objects found in the latent, and weighted by foreground_weight;
the shape cells (where a clip's latents move when its shapes are swapped) and shape_weight;
the noise `text_noise` puts on the token states and the tokens `text_token_dropout` hides; the
shape contrast and the wrong-shape captions it reads."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from vidora.flow import sample_timesteps
from vidora.train.config import DataConfig, DiTTrainConfig
from vidora.train.dit import (
    CaptionedLatents,
    LatentCache,
    WrongText,
    add_shape_cells,
    conditioning_mask,
    dit_loss,
    drop_tokens,
    jitter_text,
    latent_foreground,
)
from vidora.world.captions import parse_prompt
from vidora.world.scene import shape_swapped


def _canvas_with_object() -> torch.Tensor:
    """(1, 8, 3, 8, 8) latents: a flat canvas, and a 2x2 object in every frame."""
    latents = torch.full((1, 8, 3, 8, 8), 0.3)
    latents[..., 2:4, 5:7] = -1.5
    return latents


def test_latent_foreground_is_the_object_not_the_canvas() -> None:
    mask = latent_foreground(_canvas_with_object())  # (1, 1, 3, 8, 8)
    expected = torch.zeros(1, 1, 3, 8, 8, dtype=torch.bool)
    expected[..., 2:4, 5:7] = True
    assert torch.equal(mask, expected)


class _WrongOnObject(torch.nn.Module):
    """Predicts the true velocity everywhere except on the object, where it is off by 1."""

    def __init__(self, latents: torch.Tensor, noise: torch.Tensor) -> None:
        super().__init__()
        self.target = latents - noise
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # dit_loss reads the device off it
        self.object = latent_foreground(latents)

    def forward(self, x, t, text, text_mask, cond):  # the DiT's signature
        return self.target + self.object.float()


def test_foreground_weight_raises_the_share_of_object_errors() -> None:
    latents = _canvas_with_object()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    model = _WrongOnObject(latents, noise)
    text, text_mask = torch.zeros(1, 4, 16), torch.ones(1, 4, dtype=torch.bool)
    cfg = replace(DiTTrainConfig(), cond_prob=0.0)

    def loss(weight: float) -> float:
        # The same generator seed draws the same noise the model was built with.
        generator = torch.Generator().manual_seed(0)
        return dit_loss(
            model, latents, text, text_mask, replace(cfg, foreground_weight=weight), generator
        ).item()

    share = 4 / 64  # the object's positions in a frame
    assert abs(loss(0.0) - share) < 1e-5  # error 1 on a sixteenth of the positions
    assert abs(loss(3.0) - 4 * share / (1 + 3 * share)) < 1e-5


class _KeptMeans(torch.nn.Module):
    """Records which clips' condition keeps the prompt's mean; predicts zero velocity."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.kept: list[torch.Tensor | None] = []

    def forward(self, x, t, text, text_mask, cond, keep_mean=None):
        self.kept.append(keep_mean)
        return torch.zeros_like(x)


def test_mean_dropout_leaves_the_prompt_mean_out_of_its_share_of_clips() -> None:
    latents = torch.zeros(4000, 2, 1, 2, 2)
    text, text_mask = torch.zeros(4000, 3, 8), torch.ones(4000, 3, dtype=torch.bool)
    model = _KeptMeans()
    generator = torch.Generator().manual_seed(0)
    dit_loss(model, latents, text, text_mask, DiTTrainConfig(), generator)
    assert model.kept == [None]  # off by default: the DiT keeps every mean
    dit_loss(model, latents, text, text_mask, DiTTrainConfig(mean_dropout=0.3), generator)
    kept = model.kept[-1]
    assert kept.shape == (4000,) and kept.dtype == torch.bool
    assert abs((~kept).float().mean().item() - 0.3) < 0.03


def test_shape_weight_weighs_errors_by_their_cells_shape_distance() -> None:
    latents = _canvas_with_object()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    model = _WrongOnObject(latents, noise)  # error 1 on the object's 4 cells of 64 a frame
    text, text_mask = torch.zeros(1, 4, 16), torch.ones(1, 4, dtype=torch.bool)
    cells = torch.zeros(1, 1, 3, 8, 8)
    cells[..., 2, 5] = 10.0  # far past SHAPE_DISTANCE_FULL: the whole weight
    cells[..., 3, 5] = 1.0  # half of SHAPE_DISTANCE_FULL (2.0): half of it
    cells[..., 0, 0] = 10.0  # on the canvas, where the model is right

    def loss(weight: float, shape_cells: torch.Tensor | None = cells) -> float:
        cfg = replace(DiTTrainConfig(), cond_prob=0.0, shape_weight=weight)
        generator = torch.Generator().manual_seed(0)
        return dit_loss(
            model, latents, text, text_mask, cfg, generator, shape_cells=shape_cells
        ).item()

    assert abs(loss(0.0) - 4 / 64) < 1e-5
    assert abs(loss(4.0, None) - 4 / 64) < 1e-5  # no cells, no weight
    # weights 5, 3, 1, 1 on the object's cells; 5 on one canvas cell; 1 on the other 59
    assert abs(loss(4.0) - (5 + 3 + 1 + 1) / (5 + 3 + 1 + 1 + 5 + 59)) < 1e-5


def test_draw_with_shape_cells_gives_each_clips_own_cells() -> None:
    data = DataConfig(sizes=("64x64",), frames=(33,), frame_weights=(1.0,))
    rows = torch.arange(40.0)[:, None, None, None, None]  # row i's latents and cells hold i
    cache = LatentCache({"64x64": rows.expand(40, 8, 9, 8, 8)}, {"64x64": list(range(40))}, data)
    with pytest.raises(ValueError, match="no shape cells"):
        CaptionedLatents(cache, seed=3).draw(8, shape_cells=True)
    cache.shape_cells = {"64x64": (rows * 2).expand(40, 1, 9, 8, 8).half()}
    batch = CaptionedLatents(cache, seed=3).draw(40, shape_cells=True)
    assert batch.shape_cells.shape == (40, 1, 9, 8, 8) and batch.size == "64x64"
    assert torch.equal(batch.shape_cells, 2 * batch.latents[:, :1])  # each clip's own row
    plain = CaptionedLatents(cache, seed=3).draw(40)
    assert batch.captions == plain.captions and plain.shape_cells is None  # the same draws


def test_shape_cells_are_where_the_shapes_differ(tmp_path) -> None:
    from vidora.models.vae import VAE_PRESETS, VideoVAE

    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["tiny"]()).eval()
    data = DataConfig(sizes=("64x64",), frames=(33,), frame_weights=(1.0,), seed=3)
    cache = LatentCache.build(tmp_path / "latents.safetensors", vae, data, 4)
    path = tmp_path / "shape_cells.safetensors"
    add_shape_cells(cache, vae, path)
    cells = cache.shape_cells["64x64"]  # (4, 1, F, h, w)
    assert cells.shape == (4, 1, *cache.latents["64x64"].shape[2:])
    # Each clip's cells are its latents' distance from its twin's, whose objects are drawn as
    # other shapes.
    from vidora.train.data import encode_clips
    from vidora.world.render import render
    from vidora.world.splits import get_clip

    for clip, key in enumerate(cache.keys["64x64"]):
        scene = get_clip("train", key, 3).scene
        twin = encode_clips(vae, [render(shape_swapped(scene))])  # (1, z, F, h, w)
        expected = (cache.latents["64x64"][clip : clip + 1].float() - twin).norm(dim=1)
        assert torch.allclose(cells[clip].float(), expected, atol=2e-3, rtol=2e-3)
        assert expected.max() > 0.1  # every swap changes the clip
    stored = cells.clone()
    cache.shape_cells = None
    add_shape_cells(cache, vae, path)  # read back from the file, not rebuilt
    assert torch.equal(cache.shape_cells["64x64"], stored)
    cache.shape_cells = None
    add_shape_cells(cache, vae, tmp_path / "by_workers.safetensors", workers=2)
    assert torch.equal(cache.shape_cells["64x64"], stored)  # rendered in processes: the same
    assert all(
        o.shape != s.shape for o, s in zip(scene.objects, shape_swapped(scene).objects, strict=True)
    )
    assert [replace(o, shape="circle") for o in scene.objects] == [
        replace(o, shape="circle") for o in shape_swapped(scene).objects
    ]


def test_noise_comes_from_the_noise_generator_when_one_is_given() -> None:
    # On a GPU the trainer draws noise there with its own generator; timesteps stay on the CPU's.
    latents = _canvas_with_object()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(5))
    model = _WrongOnObject(latents, noise)
    text, text_mask = torch.zeros(1, 4, 16), torch.ones(1, 4, dtype=torch.bool)
    cfg = replace(DiTTrainConfig(), cond_prob=0.0, foreground_weight=0.0)

    def loss(noise_seed: int | None) -> float:
        generator = torch.Generator().manual_seed(0)
        noise_generator = None if noise_seed is None else torch.Generator().manual_seed(noise_seed)
        return dit_loss(model, latents, text, text_mask, cfg, generator, noise_generator).item()

    share = 4 / 64
    assert abs(loss(5) - share) < 1e-5  # the model's noise: only the object's error is left
    assert loss(None) > 2 * share  # the CPU generator's (seed 0) noise is other noise


def test_jitter_text_noises_the_real_tokens_alone() -> None:
    text = torch.randn(4, 12, 64, generator=torch.Generator().manual_seed(1))  # (B, L, D)
    text_mask = torch.arange(12)[None] < torch.tensor([[3], [7], [12], [1]])  # (B, L)
    jittered = jitter_text(text, text_mask, 0.2, torch.Generator().manual_seed(0))
    noise = jittered - text
    assert torch.equal(noise[~text_mask], torch.zeros_like(noise[~text_mask]))  # padding as it was
    assert abs(noise[text_mask].std().item() - 0.2) < 0.01  # 1,472 draws of std 0.2
    again = jitter_text(text, text_mask, 0.2, torch.Generator().manual_seed(0))
    assert torch.equal(again, jittered)  # the run's generator decides it, so a resume repeats it


def test_drop_tokens_hides_real_tokens_but_the_first() -> None:
    text_mask = torch.arange(40)[None] < torch.tensor([[2], [25], [40]])  # (3, 40)
    dropped = drop_tokens(text_mask, 0.25, torch.Generator().manual_seed(0))
    assert not (dropped & ~text_mask).any()  # padding stays padding
    assert dropped[:, 0].all()  # [CLS] is always kept
    hidden = (text_mask & ~dropped)[:, 1:].sum().item() / text_mask[:, 1:].sum().item()
    assert 0.15 < hidden < 0.35  # 64 real tokens, each hidden with probability 0.25
    assert torch.equal(drop_tokens(text_mask, 0.0, torch.Generator()), text_mask)


class _ErrorFromText(torch.nn.Module):
    """Off the true velocity on the object by `scale` times the first number of each clip's
    token states: the loss's gradient on `scale` says which way training moves the error."""

    def __init__(self, latents: torch.Tensor, noise: torch.Tensor) -> None:
        super().__init__()
        self.target = latents - noise
        self.scale = torch.nn.Parameter(torch.ones(()))
        self.object = latent_foreground(latents).float()

    def forward(self, x, t, text, text_mask, cond):
        n = x.shape[0]
        error = self.scale * text[:, 0, 0].view(n, 1, 1, 1, 1)
        return self.target.expand(n, -1, -1, -1, -1) + error * self.object


def test_shape_contrast_charges_a_wrong_caption_that_costs_too_little() -> None:
    latents = _canvas_with_object()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    model = _ErrorFromText(latents, noise)
    text, text_mask = torch.ones(1, 4, 16), torch.ones(1, 4, dtype=torch.bool)
    cfg = replace(DiTTrainConfig(), cond_prob=0.0, shape_contrast=0.5, shape_contrast_max_t=1.0)

    def loss(wrong_error: float, used: bool = True) -> float:
        wrong_text = torch.full((1, 6, 16), wrong_error)  # another length: padded to one pass
        wrong = WrongText(wrong_text, torch.ones(1, 6, dtype=torch.bool), torch.tensor([used]))
        generator = torch.Generator().manual_seed(0)
        return dit_loss(model, latents, text, text_mask, cfg, generator, None, wrong).item()

    share = 4 / 64  # the true caption's loss: error 1 on the object's positions
    assert abs(loss(1.0) - (share + 0.5 * 1.0)) < 1e-5  # the same loss: the whole margin charged
    assert abs(loss(1.2) - (share + 0.5 * (1.0 - 0.44))) < 1e-5  # a rise of 44%: the rest
    assert abs(loss(2.0) - share) < 1e-5  # four times the loss: past the margin, no charge
    assert abs(loss(1.0, used=False) - share) < 1e-5  # a dropped caption: nothing to contrast
    cfg = replace(cfg, shape_contrast_max_t=0.0)
    assert abs(loss(1.0) - share) < 1e-5  # a clip nearer the data than max_t: not charged


def test_shape_contrast_without_the_wrong_gradient_only_lowers_the_true_loss() -> None:
    latents = _canvas_with_object()
    noise = torch.randn(latents.shape, generator=torch.Generator().manual_seed(0))
    text, text_mask = torch.ones(1, 4, 16), torch.ones(1, 4, dtype=torch.bool)
    wrong = WrongText(torch.full((1, 4, 16), 1.2), text_mask, torch.tensor([True]))
    cfg = replace(DiTTrainConfig(), cond_prob=0.0, shape_contrast=0.5, shape_contrast_max_t=1.0)

    def loss_and_grad(wrong_grad: bool) -> tuple[float, float]:
        model = _ErrorFromText(latents, noise)
        run = replace(cfg, shape_contrast_wrong_grad=wrong_grad)
        generator = torch.Generator().manual_seed(0)  # draws the noise the model knows
        loss = dit_loss(model, latents, text, text_mask, run, generator, None, wrong)
        loss.backward()
        return loss.item(), model.scale.grad.item()

    share = 4 / 64  # loss under error e on the object's positions: share * e^2
    both_loss, both_grad = loss_and_grad(True)
    true_loss, true_grad = loss_and_grad(False)
    assert abs(both_loss - true_loss) < 1e-6  # the same loss, trained differently:
    # through both captions, a larger error raises the wrong caption's loss faster than the
    # true one's, and training grows the error (the hinge's pull outweighs the flow loss's)
    assert abs(both_grad - (2 * share - 0.5 * 2 * (1.2**2 - 1))) < 1e-5
    assert both_grad < 0
    # through the true caption alone, the hinge only adds to the pull toward the right velocity
    assert abs(true_grad - (2 * share + 0.5 * 2)) < 1e-5


def test_wrong_shape_captions_change_one_shape_word_alone() -> None:
    data = DataConfig(sizes=("64x64",), frames=(33,), frame_weights=(1.0,))
    cache = LatentCache({"64x64": torch.zeros(40, 8, 9, 8, 8)}, {"64x64": list(range(40))}, data)
    batch = CaptionedLatents(cache, seed=3).draw(40, wrong_shapes=True)
    assert batch.latents.shape == (40, 8, 9, 8, 8) and batch.size == "64x64"
    for true, swapped in zip(batch.captions, batch.wrong_captions, strict=True):
        a, b = parse_prompt(true), parse_prompt(swapped)
        assert a.background == b.background and len(a.objects) == len(b.objects)
        changed = [(x, y) for x, y in zip(a.objects, b.objects, strict=True) if x != y]
        assert len(changed) == 1, (true, swapped)
        ((x, y),) = changed
        assert x.shape != y.shape and replace(x, shape=y.shape) == y
        assert sum(u != v for u, v in zip(true.split(), swapped.split(), strict=True)) == 1


def test_unknown_background_puts_stand_ins_where_the_background_word_was() -> None:
    data = DataConfig(sizes=("64x64",), frames=(33,), frame_weights=(1.0,))
    cache = LatentCache({"64x64": torch.zeros(40, 8, 9, 8, 8)}, {"64x64": list(range(40))}, data)
    stand_ins = ("aerospace", "lemonade", "umbrella")
    plain = CaptionedLatents(cache, seed=3).draw(200).captions
    assert plain == CaptionedLatents(cache, seed=3, unknown_background=0.0).draw(200).captions
    captions = CaptionedLatents(cache, seed=3, unknown_background=0.5, stand_ins=stand_ins)
    drawn = captions.draw(200).captions
    unread = [c for c in drawn if parse_prompt(c).background is None]
    assert 70 < len(unread) < 130  # about half
    for caption in unread:
        assert any(word in caption for word in stand_ins), caption
        assert parse_prompt(caption).objects  # the objects are still named
    with pytest.raises(ValueError, match="stand-in words"):
        CaptionedLatents(cache, seed=3, unknown_background=0.5)


def test_continuation_draws_come_from_their_cache_with_no_shape_weight() -> None:
    data = DataConfig(sizes=("64x64",), frames=(33,), frame_weights=(1.0,))
    plain = LatentCache({"64x64": torch.zeros(40, 8, 9, 8, 8)}, {"64x64": list(range(40))}, data)
    plain.shape_cells = {"64x64": torch.ones(40, 1, 9, 8, 8).half()}
    carried = LatentCache(
        {"64x64": torch.ones(10, 8, 9, 8, 8)}, {"64x64": list(range(100, 110))}, data
    )
    with pytest.raises(ValueError, match="needs a cache of continuation clips"):
        CaptionedLatents(plain, seed=3, continuation_share=0.5)
    draws = CaptionedLatents(plain, seed=3, continuations=carried, continuation_share=0.25)
    batch = draws.draw(400, shape_cells=True)
    assert 70 < int(batch.extends.sum()) < 130  # about a quarter
    from_carried = batch.latents.flatten(1).eq(1).all(1)  # (B,) rows of the continuation cache
    assert torch.equal(from_carried, batch.extends)
    assert torch.equal(batch.shape_cells.flatten(1).eq(0).all(1), batch.extends)
    # Captions come from each clip's own scene: the continuation's key, not the row it replaced.
    scenes = draws._scenes(list(range(100, 110)))
    colours = {o.colour for scene in scenes for o in scene.objects}
    for caption, extends in zip(batch.captions, batch.extends.tolist(), strict=True):
        if extends:
            assert {o.colour for o in parse_prompt(caption).objects} <= colours, caption
    # Without continuations the same seed draws the same clips and captions as before.
    assert not CaptionedLatents(plain, seed=3).draw(400).extends.any()
    assert (
        CaptionedLatents(plain, seed=3).draw(40).captions
        == CaptionedLatents(plain, seed=3, continuations=carried).draw(40).captions
    )


class _RecordsGiven(torch.nn.Module):
    """Predicts zero velocity and remembers the conditioning mask it was given."""

    def __init__(self) -> None:
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(()))
        self.cond: torch.Tensor | None = None

    def forward(self, x, t, text, text_mask, cond):
        self.cond = cond
        return torch.zeros_like(x) + self.anchor


def test_continuation_clips_are_given_their_first_two_latent_frames() -> None:
    latents = torch.randn(6, 8, 9, 8, 8, generator=torch.Generator().manual_seed(1))
    text, text_mask = torch.zeros(6, 4, 16), torch.ones(6, 4, dtype=torch.bool)
    extends = torch.tensor([True, False, True, False, False, True])
    cfg = replace(DiTTrainConfig(), cond_prob=0.5)
    model = _RecordsGiven()
    dit_loss(
        model, latents, text, text_mask, cfg, torch.Generator().manual_seed(0), extends=extends
    )
    # dit_loss draws the noise, then the times, then the mask: draw them again to compare
    generator = torch.Generator().manual_seed(0)
    torch.randn(latents.shape, generator=generator)
    sample_timesteps(6, generator, shift=cfg.timestep_shift)
    random = conditioning_mask(6, 9, 0.5, generator)
    expected = torch.where(extends[:, None], torch.arange(9) < 2, random)
    assert torch.equal(model.cond, expected)
    assert not torch.equal(random[extends], expected[extends])  # the test can tell them apart
