"""The two training stages end to end with tiny models: files written, resume, release loads."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from vidora.cli import app
from vidora.models.vae import VideoVAE
from vidora.pipelines import TextToVideoPipeline
from vidora.train import dit as dit_stage
from vidora.train import vae as vae_stage
from vidora.train.checkpoint import load_checkpoint
from vidora.train.config import DiTTrainConfig, VAETrainConfig, load_config

FAST_DATA = ["data.frames=[1, 5]", "data.frame_weights=[0.5, 0.5]"]


def _vae_cfg(run_dir: Path, steps: int) -> VAETrainConfig:
    return load_config(
        VAETrainConfig,
        None,
        [
            f"run_dir={run_dir}",
            "preset=tiny",
            f"steps={steps}",
            "batch_size=2",
            "log_every=1",
            "save_every=2",
            "warmup=2",
            *FAST_DATA,
        ],
    )


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("vae")
    vae_stage.main(_vae_cfg(run_dir, steps=4))
    return run_dir


def test_vae_stage_writes_a_loadable_vae_and_curves(vae_run: Path) -> None:
    for name in ("last.safetensors", "last.optim.pt", "vae.safetensors", "log.jsonl", "loss.png"):
        assert (vae_run / name).is_file(), name
    vae = vae_stage.load_vae(vae_run / "vae.safetensors")
    assert vae.cfg.latent_scale > 0 and vae.cfg.latent_shift != 0.0  # measured, not the defaults
    steps = [json.loads(line)["step"] for line in (vae_run / "log.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_vae_stage_resumes_where_it_stopped(vae_run: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "resumed"
    run_dir.mkdir()
    for name in ("last.safetensors", "last.optim.pt"):
        (run_dir / name).write_bytes((vae_run / name).read_bytes())
    vae_stage.main(_vae_cfg(run_dir, steps=6))
    steps = [json.loads(line)["step"] for line in (run_dir / "log.jsonl").read_text().splitlines()]
    assert steps == [5, 6]


def _dit_cfg(run_dir: Path, vae_run: Path, *overrides: str) -> DiTTrainConfig:
    """A tiny DiT run on the tiny VAE: 2 clips a step, 6 in the cache, a log line a step."""
    base = [
        f"run_dir={run_dir}",
        f"vae_checkpoint={vae_run / 'vae.safetensors'}",
        "text_encoder=tiny-random",
        "preset=tiny",
        "batch_size=2",
        "cache_clips=6",
        "log_every=1",
    ]
    return load_config(DiTTrainConfig, None, [*base, *overrides])


def test_dit_stage_trains_on_the_vae_and_releases_a_pipeline(vae_run: Path, tmp_path: Path) -> None:
    measured = ["val_clips=3", "word_gap_clips=3", "val_every=2"]
    text = ["text_noise=0.2", "text_token_dropout=0.1"]
    cfg = _dit_cfg(tmp_path, vae_run, "steps=3", "save_every=3", "warmup=1", *measured, *text)
    out = dit_stage.main(cfg)
    assert out == tmp_path / "model.safetensors"
    assert (tmp_path / "latents.safetensors").is_file() and (tmp_path / "loss.png").is_file()
    pipe = TextToVideoPipeline.from_pretrained(out)
    video = pipe("a red circle moving left on a black background", size="96x64").videos[0]
    assert video.shape == (32, 64, 96, 3) and video.dtype == np.uint8
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 3 and all(np.isfinite(losses))
    # Held-out loss of the EMA weights: at the start, every val_every steps, and at the end.
    validated = [(r["step"], r["val_loss"]) for r in records if "val_loss" in r]
    assert [step for step, _ in validated] == [0, 2, 3]
    assert all(np.isfinite(v) and v > 0 for _, v in validated)
    gaps = [r for r in records if "gap_motion" in r]  # measured with val_loss, on the same weights
    assert [r["step"] for r in gaps] == [0, 2, 3]
    for prefix in ("gap_", "gap_heldout_"):  # in training wording and in the held-out wording
        assert all(
            np.isfinite(r[prefix + a]) for r in gaps for a in ("colour", "shape", "size", "motion")
        )


def test_a_shape_contrast_run_trains_and_resumes(vae_run: Path, tmp_path: Path) -> None:
    def cfg(steps: int) -> DiTTrainConfig:
        extra = ["save_every=2", "warmup=1", "val_clips=0", "word_gap_clips=0"]
        return _dit_cfg(tmp_path, vae_run, f"steps={steps}", *extra, "shape_contrast=0.5")

    dit_stage.main(cfg(2))
    dit_stage.main(cfg(3))  # resumed: the draws replayed with their wrong-shape captions
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(
        np.isfinite(r["loss"]) for r in records
    )
    with pytest.raises(ValueError, match="shape_contrast needs Shapes World"):
        dit_stage.main(replace(cfg(3), data=replace(cfg(3).data, source=str(tmp_path))))


def test_a_continuation_run_trains_and_resumes(vae_run: Path, tmp_path: Path) -> None:
    def cfg(steps: int) -> DiTTrainConfig:
        extra = ["save_every=2", "warmup=1", "val_clips=0", "word_gap_clips=0", "batch_size=4"]
        share = ["continuation_share=0.5", "continuation_clips=6"]
        return _dit_cfg(tmp_path, vae_run, f"steps={steps}", *extra, *share)

    dit_stage.main(cfg(2))
    assert (tmp_path / "continuations.safetensors").is_file()
    dit_stage.main(cfg(3))  # resumed: the draws replayed, continuations included
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3] and all(
        np.isfinite(r["loss"]) for r in records
    )
    with pytest.raises(ValueError, match="continuation_share carries Shapes World"):
        dit_stage.main(replace(cfg(3), data=replace(cfg(3).data, source=str(tmp_path))))


def _from_release(tmp_path: Path, pipe: TextToVideoPipeline, *overrides: str) -> DiTTrainConfig:
    """A 2-step run of a tiny DiT started from `pipe`, saved as a release."""
    path = pipe.save_pretrained(tmp_path / "release.safetensors")
    return _dit_cfg(
        tmp_path / "run",
        tmp_path,
        "text_encoder=tiny-random",
        f"vae_checkpoint={path}",
        f"init_from={path}",
        "steps=2",
        "warmup=1",
        "lr=0.01",
        "val_clips=0",
        "word_gap_clips=0",
        *overrides,
    )


def test_a_refine_run_trains_the_new_head_alone(tmp_path: Path) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    cfg = _from_release(tmp_path, pipe, "refine_width=8", "train_part=refine")
    model = TextToVideoPipeline.from_pretrained(dit_stage.main(cfg)).dit
    assert model.cfg.refine_width == 8  # the release's config carries the head
    for name, weight in pipe.dit.state_dict().items():  # the rest of the DiT as it started
        assert torch.equal(model.state_dict()[name], weight), name
    assert model.refine.conv_out.weight.abs().sum() > 0  # the head, zero at the start, trained
    with pytest.raises(ValueError, match="needs refine_width > 0 and init_from"):
        dit_stage.main(replace(cfg, refine_width=0))


@pytest.mark.parametrize("part_lr_scale", [1.0, 0.0])
def test_a_run_adds_a_prompt_pool_to_a_release_that_lacks_it(
    tmp_path: Path, part_lr_scale: float
) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    with torch.no_grad():  # off the zero init, so the condition the pool feeds is read
        for weight in pipe.dit.parameters():
            weight.add_(torch.randn_like(weight) * 0.05)
    cfg = _from_release(
        tmp_path, pipe, "pool_queries=2", "ema_decay=0", f"part_lr_scale={part_lr_scale}"
    )
    model = TextToVideoPipeline.from_pretrained(dit_stage.main(cfg)).dit
    assert model.cfg.pool_queries == 2  # the release's config carries the pool
    pool_moved = model.pool.out.weight.abs().sum() > 0  # zero at the start
    assert pool_moved == (part_lr_scale > 0)  # trained with the rest, unless its rate is zero
    assert not torch.equal(model.final.linear.weight, pipe.dit.final.linear.weight)


def test_an_attribute_run_logs_each_attribute_and_releases_a_pipeline(tmp_path: Path) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    extra = ["attribute_weight=0.5", "attribute_block=1", "continuation_share=0.5"]
    cfg = _from_release(tmp_path, pipe, *extra, "continuation_clips=6", "log_every=1")
    model = TextToVideoPipeline.from_pretrained(dit_stage.main(cfg))
    assert model.dit.cfg.attribute_classes == (8, 3, 6, 2)  # colour, shape, motion, size
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert len(logged) == 2
    assert all(np.isfinite(r["ce_shape"]) and r["ce_shape"] > 0 for r in logged)
    video = model("a red circle moving left on a black background", size="64x64").videos[0]
    assert video.shape == (32, 64, 64, 3)


def test_a_grounding_run_logs_its_loss_and_releases_a_pipeline(tmp_path: Path) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    extra = ["grounding_weight=0.5", "continuation_share=0.5", "continuation_clips=6"]
    cfg = _from_release(tmp_path, pipe, *extra, "log_every=1")
    model = TextToVideoPipeline.from_pretrained(dit_stage.main(cfg))
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    logged = [r for r in records if "loss" in r]
    assert len(logged) == 2
    assert all(0 < r["ground"] <= 1 for r in logged)  # a share of attention
    video = model("a red circle moving left on a black background", size="64x64").videos[0]
    assert video.shape == (32, 64, 64, 3)


def test_a_run_without_the_prompt_mean_half_the_time_releases_a_pipeline(tmp_path: Path) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    cfg = _from_release(tmp_path, pipe, "mean_dropout=0.5", "log_every=1")
    release = dit_stage.main(cfg)
    trained = TextToVideoPipeline.from_pretrained(release)
    assert trained.dit.cfg.prompt_mean  # sampled with the mean unless its config says not
    records = [json.loads(line) for line in (tmp_path / "run/log.jsonl").read_text().splitlines()]
    assert [np.isfinite(r["loss"]) for r in records if "loss" in r] == [True, True]
    video = trained("a red circle moving left on a black background", size="64x64").videos[0]
    assert video.shape == (32, 64, 64, 3)


def test_config_overrides_and_errors(tmp_path: Path) -> None:
    cfg = load_config(DiTTrainConfig, None, ["steps=7", "data.sizes=[64x64]"])
    assert cfg.steps == 7 and cfg.data.sizes == ("64x64",)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text("lr: 0.001\ndata:\n  seed: 4\n")
    cfg = load_config(VAETrainConfig, yaml_file, ["steps=3"])
    assert (cfg.lr, cfg.data.seed, cfg.steps) == (0.001, 4, 3)
    with pytest.raises(ValueError, match="unknown VAETrainConfig field"):
        load_config(VAETrainConfig, None, ["stpes=3"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(VAETrainConfig, None, ["steps"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["vae", "learning_rate=1"], "unknown VAETrainConfig field"),
        (["vae", "train_part=decoder"], "set init_from"),
        (["dit", "train_part=refine"], "needs refine_width > 0 and init_from"),
        (["dit", "train_part=head"], "train_part must be 'all' or 'refine'"),
        (["dit", "unknown_background=30"], "unknown_background is a share, 0 to 1"),
        (["dit", "part_lr_scale=-1"], "part_lr_scale multiplies the learning rate"),
        (["dit", "shape_weight=-1"], "shape_weight is an extra loss weight"),
        (["dit", "attribute_weight=-1"], "attribute_weight is a loss weight"),
        (["dit", "attribute_weight=1", "attribute_block=7"], "attribute_block counts blocks"),
        (["dit", "attribute_weight=1", "shape_contrast=1"], "attribute_weight needs Shapes World"),
        (["dit", "grounding_weight=-1"], "grounding_weight is a loss weight"),
        (["dit", "grounding_weight=1", "shape_contrast=1"], "grounding_weight needs Shapes World"),
        (
            ["dit", "grounding_weight=1", "attribute_weight=1"],
            "grounding_weight and attribute_weight",
        ),
        (["dit", "continuation_share=1.5"], "continuation_share is a share, 0 to 1"),
        (["dit", "mean_dropout=1"], "mean_dropout is a share of clips"),
        (["dit", "mean_dropout=0.5", "shape_contrast=1"], "mean_dropout and shape_contrast"),
        (["dit", "shape_weight=3", "shape_contrast=1"], "shape_weight needs Shapes World"),
    ],
)
def test_train_cli_reports_a_bad_setting_cleanly(args: list[str], message: str) -> None:
    result = CliRunner().invoke(app, ["train", *args])
    assert result.exit_code == 2
    assert message in " ".join(result.output.split())  # rich wraps long messages
    assert "Traceback" not in result.output


def test_a_run_can_start_from_a_release(tmp_path: Path) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    path = pipe.save_pretrained(tmp_path / "release.safetensors")
    cfg = load_config(
        VAETrainConfig,
        None,
        [f"run_dir={tmp_path / 'run'}", "preset=tiny", "steps=0", f"init_from={path}", *FAST_DATA],
    )
    vae = vae_stage.load_vae(vae_stage.main(cfg))
    for name, weight in pipe.vae.state_dict().items():
        assert torch.equal(vae.state_dict()[name], weight), name


def test_a_releases_vae_loads_as_the_vae_a_dit_trains_on(tmp_path: Path) -> None:
    pipe = TextToVideoPipeline.tiny_random()
    path = pipe.save_pretrained(tmp_path / "release.safetensors")
    vae = vae_stage.load_vae(path)
    assert vae.cfg == pipe.vae.cfg
    for name, weight in pipe.vae.state_dict().items():
        assert torch.equal(vae.state_dict()[name], weight.float()), name
    assert not any(p.requires_grad for p in vae.parameters())


def test_decoder_fine_tune_keeps_the_encoder_and_its_latent_statistics(
    vae_run: Path, tmp_path: Path
) -> None:
    start = vae_stage.load_vae(vae_run / "vae.safetensors")
    cfg = load_config(
        VAETrainConfig,
        None,
        [
            f"run_dir={tmp_path / 'decoder'}",
            f"init_from={vae_run / 'vae.safetensors'}",
            "train_part=decoder",
            "steps=3",
            "batch_size=2",
            "lr=0.01",
            "warmup=1",
            *FAST_DATA,
        ],
    )
    tuned = vae_stage.load_vae(vae_stage.main(cfg))
    assert tuned.cfg == start.cfg  # latent shift and scale carried over, not re-measured
    before, after = start.state_dict(), tuned.state_dict()
    for name in before:
        same = torch.equal(before[name], after[name])
        assert same == name.startswith("encoder."), name


@pytest.mark.parametrize("option", ["train_part=decoder", "anchor_weight=1"])
def test_options_that_keep_a_dits_latents_need_a_vae_to_start_from(
    option: str, tmp_path: Path
) -> None:
    cfg = load_config(VAETrainConfig, None, [f"run_dir={tmp_path}", option, *FAST_DATA])
    with pytest.raises(ValueError, match="set init_from"):
        vae_stage.main(cfg)


def test_an_anchored_vae_trains_whole_but_keeps_its_latents_near_the_start(
    vae_run: Path, tmp_path: Path
) -> None:
    start = vae_stage.load_vae(vae_run / "vae.safetensors")

    def train(anchor_weight: float) -> VideoVAE:
        overrides = [
            f"run_dir={tmp_path / str(anchor_weight)}",
            f"init_from={vae_run / 'vae.safetensors'}",
        ]
        overrides += ["steps=16", "crop=16", "batch_size=2", "lr=0.01", "warmup=1", *FAST_DATA]
        cfg = load_config(VAETrainConfig, None, [*overrides, f"anchor_weight={anchor_weight}"])
        return vae_stage.load_vae(vae_stage.main(cfg))

    free, anchored = train(0.0), train(100.0)
    video = torch.rand(2, 3, 5, 16, 16, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def drift(vae: VideoVAE) -> float:
        with torch.no_grad():
            return (vae.encode(video)[0] - start.encode(video)[0]).square().mean().item()

    assert drift(anchored) < 0.5 * drift(free)
    assert anchored.cfg == start.cfg  # near the start's latents: its statistics stand
    assert free.cfg != start.cfg  # a free run measures its own
    assert not torch.equal(anchored.encoder.conv_in.conv.weight, start.encoder.conv_in.conv.weight)


def test_an_anchored_run_from_a_release_writes_the_release_with_its_new_vae(
    tmp_path: Path,
) -> None:
    start = TextToVideoPipeline.tiny_random()
    path = start.save_pretrained(tmp_path / "release.safetensors")
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={path}", "anchor_weight=1"]
    overrides += ["steps=3", "crop=16", "batch_size=2", "lr=0.01", "warmup=1", *FAST_DATA]
    result = CliRunner().invoke(app, ["train", "vae", *overrides])
    assert result.exit_code == 0, result.output
    assert f"wrote {tmp_path / 'run' / 'model.safetensors'}" in " ".join(result.output.split())
    trained = vae_stage.load_vae(tmp_path / "run" / "vae.safetensors")

    model = TextToVideoPipeline.from_pretrained(tmp_path / "run" / "model.safetensors")
    for name, weight in trained.state_dict().items():  # the run's VAE...
        assert torch.equal(model.vae.state_dict()[name], weight), name
    encoder_in = model.vae.encoder.conv_in.conv.weight
    assert not torch.equal(encoder_in, start.vae.encoder.conv_in.conv.weight)  # it trained
    for name, weight in start.dit.state_dict().items():  # ...beside the release's DiT
        assert torch.equal(model.dit.state_dict()[name], weight), name
    assert model.defaults == start.defaults
    video = model(["a red circle"], size="64x64", seed=0).videos[0]  # it generates as it is
    assert video.shape[1:] == (64, 64, 3)


def test_a_release_with_a_new_vae_keeps_the_releases_header_and_precision(
    tmp_path: Path,
) -> None:
    start = TextToVideoPipeline.tiny_random()
    note = {"release_note": "the start", "reader": {"captions": 3}}
    path = start.save_pretrained(tmp_path / "release.safetensors", meta=note, half=True)
    tuned = VideoVAE(start.vae.cfg)
    with torch.no_grad():
        for weight in tuned.decoder.parameters():
            weight.add_(0.5)

    out = vae_stage.release_with_vae(path, tuned, tmp_path / "new.safetensors", {"steps": 3})
    tensors, _, meta = load_checkpoint(out)
    assert meta["release_note"] == "the start" and meta["reader"] == {"captions": 3}
    assert meta["vae_train"] == {"steps": 3} and meta["started_from"] == str(path)
    for name, weight in tuned.state_dict().items():  # the new VAE, as the release stores one
        assert torch.equal(tensors[f"vae.{name}"], weight.half()), name
    model = TextToVideoPipeline.from_pretrained(out)
    for name, weight in start.dit.state_dict().items():  # beside the release's own DiT
        assert torch.equal(model.dit.state_dict()[name], weight.half().float()), name


def test_a_free_run_from_a_release_writes_no_model(tmp_path: Path) -> None:
    path = TextToVideoPipeline.tiny_random().save_pretrained(tmp_path / "release.safetensors")
    overrides = [f"run_dir={tmp_path / 'run'}", f"init_from={path}", "steps=1", "batch_size=2"]
    vae_stage.main(load_config(VAETrainConfig, None, [*overrides, "crop=16", *FAST_DATA]))
    assert (tmp_path / "run" / "vae.safetensors").is_file()
    assert not (tmp_path / "run" / "model.safetensors").exists()  # its latents are its own


def test_a_decoder_fine_tune_can_add_a_refine_head(vae_run: Path, tmp_path: Path) -> None:
    start = vae_stage.load_vae(vae_run / "vae.safetensors")
    assert start.cfg.refine_width == 0
    overrides = [f"init_from={vae_run / 'vae.safetensors'}", "train_part=decoder", "refine_width=8"]
    overrides += ["steps=3", "batch_size=2", "lr=0.01", "warmup=1", *FAST_DATA]
    cfg = load_config(VAETrainConfig, None, [f"run_dir={tmp_path / 'refined'}", *overrides])
    tuned = vae_stage.load_vae(vae_stage.main(cfg))
    assert tuned.cfg == replace(start.cfg, refine_width=8)  # latent statistics carried over
    after = tuned.state_dict()
    assert any(name.startswith("decoder.refine.") for name in after)
    for name, weight in start.state_dict().items():
        assert torch.equal(weight, after[name]) == name.startswith("encoder."), name

    cfg = load_config(
        VAETrainConfig,
        None,
        [f"run_dir={tmp_path / 'back'}", f"init_from={tmp_path / 'refined' / 'vae.safetensors'}"]
        + ["refine_width=0", "steps=0", *FAST_DATA],
    )
    with pytest.raises(ValueError, match="does not fit this architecture"):
        vae_stage.main(cfg)
