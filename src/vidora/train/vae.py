"""Train the causal video VAE: `vidora train vae [--config FILE] [key=value ...]`.

Reconstruction (L1 + MSE) plus a small KL, on clips of every size and duration bucket, images
included, so one VAE encodes a still, a 4 s clip, and anything between. Resumes from
`run_dir/last.safetensors` when it exists. At the end it measures the latent statistics the
DiT needs (shift and scale to unit variance) and writes `run_dir/vae.safetensors`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from vidora.models.vae import VAE_PRESETS, VAEConfig, VideoVAE, pad_frames
from vidora.train.checkpoint import (
    load_checkpoint,
    load_checkpoint_info,
    load_training_state,
    save_checkpoint,
    save_training_state,
)
from vidora.train.config import VAETrainConfig, config_to_dict
from vidora.train.data import batches
from vidora.train.distributed import cleanup_distributed, setup_distributed
from vidora.train.runtime import LossLog, autocast, learning_rate

Progress = Callable[[int, int, dict], None]


def foreground(video: torch.Tensor, threshold: float = 0.2) -> torch.Tensor:
    """(B, 3, T, H, W) -> (B, 1, T, H, W) bool: pixels unlike their frame's top-left colour.

    In Shapes World nothing touches the frame edge, so the corner is background and this is the
    objects' mask; on other videos it is only a reweighting.
    """
    return (video - video[..., :1, :1]).abs().amax(dim=1, keepdim=True) > threshold


def random_crop(video: torch.Tensor, side: int, generator: torch.Generator) -> torch.Tensor:
    """A (side x side) window per clip, centred near a random foreground pixel when there is one.

    Small objects on a plain canvas would leave most uniform crops empty; centring on the
    foreground spends the compute where the detail is.
    """
    if side <= 0:
        return video
    corners = crop_corners(video, side, generator)
    return torch.stack(
        [
            clip[..., top : top + side, left : left + side]
            for clip, (top, left) in zip(video, corners, strict=True)
        ]
    )


def crop_corners(
    video: torch.Tensor, side: int, generator: torch.Generator, cell: int = 1
) -> list[tuple[int, int]]:
    """`random_crop`'s window corners (top, left) per clip of (B, 3, T, H, W), on a grid of
    `cell` pixels (a latent cell's side, to cut latents and frames alike)."""
    h, w = video.shape[-2:]
    corners = []
    for mask in foreground(video[:, :, :1])[:, 0, 0]:  # (H, W)
        points = mask.nonzero()
        if len(points):
            y, x = points[int(torch.randint(len(points), (1,), generator=generator))].tolist()
            jitter = torch.randint(-side // 4, side // 4 + 1, (2,), generator=generator).tolist()
            top, left = y - side // 2 + jitter[0], x - side // 2 + jitter[1]
        else:
            top = int(torch.randint(0, h - side + 1, (1,), generator=generator))
            left = int(torch.randint(0, w - side + 1, (1,), generator=generator))
        top, left = min(max(top, 0), h - side), min(max(left, 0), w - side)
        corners.append((top // cell * cell, left // cell * cell))
    return corners


def reconstruction_loss(
    recon: torch.Tensor, video: torch.Tensor, cfg: VAETrainConfig
) -> tuple[torch.Tensor, torch.Tensor]:
    """Foreground-weighted L1 and MSE of a decoded (B, 3, T, H, W) against the clip."""
    weight = 1.0 + cfg.foreground_weight * foreground(video).float()  # (B, 1, T, H, W)
    weight = weight / weight.mean()
    l1 = ((recon - video).abs() * weight).mean()
    mse = ((recon - video).square() * weight).mean()
    return l1, mse


def vae_loss(
    vae: VideoVAE, video: torch.Tensor, cfg: VAETrainConfig, anchor: VideoVAE | None = None
) -> tuple[torch.Tensor, dict[str, float]]:
    """Foreground-weighted reconstruction of a sampled latent, plus KL to N(0, 1) per element.

    With `train_part='decoder'` the encoder is frozen and its mean is decoded: the KL is then a
    constant, reported but not trained. With an `anchor` (the frozen starting VAE), the squared
    distance of the mean from the anchor's mean (`drift`) is added with `cfg.anchor_weight`.
    """
    module = vae.module if isinstance(vae, DistributedDataParallel) else vae
    mean, logvar = module.encode(video)  # (B, z, F, h, w) each; no graph when the encoder is frozen
    if cfg.train_part == "decoder":  # the frozen encoder's mean: what the DiT learned to make
        z = mean
    else:
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
    recon = module.decode(z).float()  # (B, 3, T, H, W)
    l1, mse = reconstruction_loss(recon, video, cfg)
    kl = 0.5 * (mean.float().square() + logvar.float().exp() - 1 - logvar.float()).mean()
    loss = cfg.l1_weight * l1 + cfg.mse_weight * mse + cfg.kl_weight * kl
    stats = {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}
    if anchor is not None:
        with torch.no_grad():
            anchor_mean, _ = anchor.encode(video)  # (B, z, F, h, w)
        drift = (mean.float() - anchor_mean.float()).square().mean()
        loss = loss + cfg.anchor_weight * drift
        stats["drift"] = drift.item()
    plain_mse = (recon - video).square().mean().detach()
    psnr = 10 * torch.log10(4.0 / plain_mse.clamp(min=1e-10))  # peak-to-peak 2 in [-1, 1]
    return loss, {"loss": loss.item(), **stats, "psnr": psnr.item()}


@torch.no_grad()
def measure_latent_stats(
    vae: VideoVAE, cfg: VAETrainConfig, clips: int = 64
) -> tuple[float, float]:
    """Mean and 1/std of latent means over 4 s clips: the DiT trains on unit-variance latents."""
    data = replace(cfg.data, frames=(33,), frame_weights=(1.0,), seed=cfg.data.seed + 1000)
    stream = batches(data, batch_size=8)
    means = []
    for _ in range(max(1, clips // 8)):
        batch = next(stream)
        means.append(vae.encode(pad_frames(batch.video))[0].flatten())
    values = torch.cat(means)
    return values.mean().item(), 1.0 / values.std().item()


def check_config(cfg: VAETrainConfig) -> None:
    """Raise ValueError, saying what to set, for settings that cannot go together; the CLI
    calls it before any work starts."""
    if cfg.train_part not in ("all", "decoder"):
        raise ValueError(f"train_part must be 'all' or 'decoder', not {cfg.train_part!r}")
    if cfg.train_part == "decoder" and not cfg.init_from:
        raise ValueError("train_part=decoder fine-tunes a trained VAE: set init_from as well")
    if cfg.anchor_weight and not cfg.init_from:
        raise ValueError("anchor_weight keeps the latents near a trained VAE's: set init_from")


def main(cfg: VAETrainConfig, progress: Progress | None = None) -> Path:
    check_config(cfg)
    dist = setup_distributed()
    torch.manual_seed(cfg.data.seed)  # same initial weights on every rank
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = LossLog(run_dir)

    model_cfg: VAEConfig = VAE_PRESETS[cfg.preset]()
    if cfg.init_from:  # its architecture, and (kept when only the decoder trains) latent stats
        model_cfg = initial_vae_config(cfg.init_from)
    if cfg.refine_width is not None:
        model_cfg = replace(model_cfg, refine_width=cfg.refine_width)
    vae = VideoVAE(model_cfg).to(dist.device)
    trained = vae.decoder if cfg.train_part == "decoder" else vae
    vae.encoder.requires_grad_(cfg.train_part == "all")
    optimizer = torch.optim.AdamW(
        trained.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=cfg.weight_decay
    )
    step = 0
    last = run_dir / "last.safetensors"
    if last.exists():
        _, meta, _ = load_training_state(last, model=vae, optimizer=optimizer)
        step = meta["step"]
    elif cfg.init_from:
        load_release_part(vae, cfg.init_from, "vae", "decoder.refine.")
    anchor = None
    if cfg.anchor_weight:  # the starting VAE, frozen (on resume too: the run's first latents)
        anchor = VideoVAE(model_cfg).to(dist.device).requires_grad_(False)
        load_release_part(anchor, cfg.init_from, "vae", "decoder.refine.")
    model = DistributedDataParallel(vae) if dist.world_size > 1 else vae  # syncs trained params
    # A resumed run skips the batches it has trained on: it sees what it would have seen.
    stream = batches(cfg.data, cfg.batch_size, dist.rank, dist.world_size, skip=step)

    crops = torch.Generator().manual_seed(cfg.data.seed * 1000 + dist.rank + step)
    started = time.time()
    while step < cfg.steps:
        batch = next(stream)
        video = random_crop(batch.video, cfg.crop, crops)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg.lr, cfg.warmup, cfg.steps)
        with autocast(cfg.autocast, dist.device):
            loss, stats = vae_loss(model, video.to(dist.device), cfg, anchor)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained.parameters(), cfg.grad_clip)
        optimizer.step()
        step += 1

        if dist.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
            stats.update(
                step=step,
                grad_norm=grad_norm.item(),
                size=batch.size,
                frames=batch.video.shape[2],
                lr=optimizer.param_groups[0]["lr"],
                elapsed=round(time.time() - started, 1),
            )
            log.append(stats)
            if progress:
                progress(step, cfg.steps, stats)
        if dist.is_main and (step % cfg.save_every == 0 or step == cfg.steps):
            save_training_state(
                last,
                model=vae,
                optimizer=optimizer,
                config=config_to_dict(cfg),
                meta={"step": step},
            )
            log.plot(("loss", "psnr"))

    out = run_dir / "vae.safetensors"
    if dist.is_main:
        vae.eval()
        if keeps_latents(cfg):  # the start's latents, or near them:
            final_cfg = model_cfg  # the statistics a DiT was trained with stand
        else:
            shift, scale = measure_latent_stats(vae, cfg)
            final_cfg = replace(model_cfg, latent_shift=shift, latent_scale=scale)
        save_checkpoint(
            out, vae.state_dict(), final_cfg.to_dict(), {"step": step, "train": config_to_dict(cfg)}
        )
        if writes_model(cfg):
            release_with_vae(cfg.init_from, vae, run_dir / "model.safetensors", config_to_dict(cfg))
    cleanup_distributed()
    return out


def keeps_latents(cfg: VAETrainConfig) -> bool:
    """Whether the run keeps its start's latents (exactly, or near them), so a DiT trained on
    them stays valid and the start's latent statistics stand."""
    return cfg.train_part == "decoder" or bool(cfg.anchor_weight)


def writes_model(cfg: VAETrainConfig) -> bool:
    """Whether the run also writes `model.safetensors`: it keeps the latents of a release's DiT."""
    return keeps_latents(cfg) and bool(cfg.init_from) and is_model_release(cfg.init_from)


def is_model_release(path: str | Path) -> bool:
    """Whether `path` is a model release (VAE and DiT), not a bare `vae.safetensors`."""
    config, _ = load_checkpoint_info(path)
    return "vae" in config and "dit" in config


def release_with_vae(release: str | Path, vae: VideoVAE, out: Path, vae_train: dict) -> Path:
    """`release` with `vae` in place of its own, written to `out`.

    Made by runs that keep the start's latents (`train_part=decoder`, `anchor_weight`): the
    release's DiT was trained on those latents, so the pair generates as it is and `vidora eval`
    can score the new VAE's effect at once, without a DiT run. The release's header (its
    reader's fit, its note) is kept, so the file can ship as a release.
    """
    tensors, config, meta = load_checkpoint(release)  # the DiT's tensors are copied as they are
    old_vae = [v for k, v in tensors.items() if k.startswith("vae.") and v.is_floating_point()]
    dtype = old_vae[0].dtype  # stored as the release stores its VAE (float16 for a shipped one)
    tensors = {k: v for k, v in tensors.items() if not k.startswith("vae.")}
    for name, weight in vae.state_dict().items():
        tensors[f"vae.{name}"] = weight.to(dtype) if weight.is_floating_point() else weight
    meta = {**meta, "vae_train": vae_train, "started_from": str(release)}  # its reader's too
    return save_checkpoint(out, tensors, {**config, "vae": vae.cfg.to_dict()}, meta)


def load_release_part(
    module: nn.Module, path: str | Path, part: str, new_head: str | tuple[str, ...]
) -> None:
    """The `part` ('vae' or 'dit') of a release (or a `vae.safetensors`) into `module`; the
    parameters under the prefix(es) `new_head`, parts the release lacks, stay as built."""
    missing, unexpected = module.load_state_dict(release_weights(path, part), strict=False)
    missing = [name for name in missing if not name.startswith(new_head)]
    if missing or unexpected:
        raise ValueError(
            f"the {part.upper()} in {path} does not fit this architecture "
            f"(missing: {missing or 'none'}; unexpected: {unexpected or 'none'})"
        )


def initial_vae_config(path: str | Path) -> VAEConfig:
    """The VAE config of a model release or of a `vae.safetensors`."""
    config, _ = load_checkpoint_info(path)  # the header only: the weights are read once, later
    return VAEConfig.from_dict(config.get("vae", config))


def release_weights(path: str | Path, part: str) -> dict[str, torch.Tensor]:
    """The `part` ('vae' or 'dit') weights of a model release, as float32, to start a run from.

    A plain `vae.safetensors` (unprefixed VAE weights) serves for part 'vae'.
    """
    tensors, config, _ = load_checkpoint(path)
    if part == "vae" and "vae" not in config and "latent_channels" in config:
        return {k: v.float() for k, v in tensors.items()}
    weights = {
        k.removeprefix(f"{part}."): v.float()
        for k, v in tensors.items()
        if k.startswith(f"{part}.")
    }
    if not weights:
        raise ValueError(f"{path} holds no {part}.* weights; is it a model release?")
    return weights


def load_vae(path: str | Path, device: str | torch.device = "cpu") -> VideoVAE:
    """A trained VAE from `vae.safetensors` or from a model release (e.g. the built-in one), so
    a DiT can be trained on a released VAE's latents without extracting it first."""
    vae = VideoVAE(initial_vae_config(path))
    vae.load_state_dict(release_weights(path, "vae"))
    return vae.to(device).eval().requires_grad_(False)
