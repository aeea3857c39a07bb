"""Fine-tune a release's VAE decoder on the latents its DiT draws, not only on its encoder's.

The decoder learned to decode the frozen encoder's means; at generation time it is handed the
DiT's latents, whose corners are softer (a square the DiT draws has a median fill ratio near the
judge's 0.89 line between square and circle). Here half the steps decode latents the DiT
finished itself: training clips encoded, put on the path at a time s in [0.45, 0.9], denoised by
the release's DiT and sampler at its defaults (guidance, renoise) from its prompt reading, and
compared with the clips' own frames. The other half are the usual round trip, so the decoder
keeps decoding the encoder's latents. The encoder and DiT stay frozen: the release's DiT
generates with the new decoder as it is.

    python scripts/train_decoder_on_dit.py --start RELEASE -o OUT.safetensors
    vidora eval --checkpoint OUT.safetensors --split eval-seen -n 200 --seeds 0 --conditioning 0

v21's decoder was made so (MODEL.md, "v21: a decoder for the DiT's latents"): START was v20
(in git history) after `vidora train vae --config configs/shapes-vae.yaml train_part=decoder
lr=0.0003 warmup=50 steps=2400 data.seed=52 init_from=V20`, then this script's first form
(the same recipe and defaults; its random draws differed, so a rerun writes other weights).
v22's is v21's after this script as it is, `--start <v21> --pool-seed 62` (MODEL.md, "v22: the
decoder tuned a second leg").
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from rich.progress import track

from vidora.models.vae import VideoVAE
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.train.config import DataConfig, VAETrainConfig
from vidora.train.data import batches
from vidora.train.runtime import autocast, learning_rate
from vidora.train.vae import (
    crop_corners,
    initial_vae_config,
    load_release_part,
    random_crop,
    reconstruction_loss,
    release_with_vae,
    vae_loss,
)
from vidora.world.spec import parse_size

CROP = 32  # pixels, the round trip's crop


@torch.no_grad()
def finished_latents(
    pipe: TextToVideoPipeline, count: int, seed: int, times: tuple[float, float]
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` training clips, batches of 8, each batch put on the path at one time drawn from
    `times` and finished by the DiT at the release's defaults: [(latents (8, z, 9, h, w)
    float16, frames (8, 3, 33, H, W) uint8)]."""
    d = pipe.defaults
    stream = batches(DataConfig(frames=(33,), frame_weights=(1.0,), seed=seed), batch_size=8)
    rng = np.random.default_rng(seed)
    pool = []
    for k in track(range(-(-count // 8)), description="DiT-finished latents"):
        batch = next(stream)
        clean = pipe.vae.normalize(pipe.vae.encode(batch.video)[0])  # (n, z, 9, h, w)
        n = len(clean)
        text, mask = pipe._encode_text([pipe._read(c).whole for c in batch.captions] + [""] * n)
        generators = [torch.Generator().manual_seed(seed * 100_000 + 8 * k + b) for b in range(n)]
        width, height = parse_size(batch.size)
        start = (clean, float(rng.uniform(*times)))
        latents = pipe._sample(
            text, mask, generators, width, height, d.steps, d.guidance, None, lambda _: None, start
        )
        frames = ((batch.video + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)
        pool.append((latents.half(), frames))
    return pool


def object_windows(
    z: torch.Tensor, video: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Matching windows of latents (B, z, F, 8, 8) and frames (B, 3, T, 32, 32), placed as
    `random_crop` places the round trip's, on the latent cells' grid."""
    cell = 4  # pixels a latent cell spans
    corners = crop_corners(video, CROP, generator, cell)
    zs = [
        latent[..., top // cell : (top + CROP) // cell, left // cell : (left + CROP) // cell]
        for latent, (top, left) in zip(z, corners, strict=True)
    ]
    vs = [
        clip[..., top : top + CROP, left : left + CROP]
        for clip, (top, left) in zip(video, corners, strict=True)
    ]
    return torch.stack(zs), torch.stack(vs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--start", required=True, help="the release whose decoder is tuned")
    parser.add_argument("-o", "--output", required=True, help="the release with the new decoder")
    parser.add_argument("--pool", type=int, default=1200, help="DiT-finished clips")
    parser.add_argument("--pool-seed", type=int, default=61)
    parser.add_argument("--steps", type=int, default=2400)
    parser.add_argument("--share", type=float, default=0.5, help="steps on DiT latents")
    parser.add_argument("--lr", type=float, default=3e-4)
    args = parser.parse_args()

    torch.manual_seed(0)
    pool = finished_latents(
        TextToVideoPipeline.from_pretrained(args.start), args.pool, args.pool_seed, (0.45, 0.9)
    )
    cfg = VAETrainConfig(
        init_from=args.start,
        train_part="decoder",
        foreground_weight=5.0,
        data=DataConfig(frames=(1, 5, 9, 17), frame_weights=(0.2, 0.3, 0.4, 0.1), seed=53),
    )
    vae = VideoVAE(initial_vae_config(args.start))
    load_release_part(vae, args.start, "vae", "decoder.refine.")
    vae.encoder.requires_grad_(False)
    optimizer = torch.optim.AdamW(vae.decoder.parameters(), lr=args.lr, betas=(0.9, 0.99))
    stream = batches(cfg.data, 8)
    generator = torch.Generator().manual_seed(1)
    log = []
    for step in track(range(args.steps), description="decoder"):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.lr, 50, args.steps)
        with autocast("auto", torch.device("cpu")):
            if torch.rand(1, generator=generator).item() < args.share:
                latents, frames = pool[int(torch.randint(len(pool), (1,), generator=generator))]
                z, video = object_windows(
                    vae.denormalize(latents.float()), frames.float() / 127.5 - 1, generator
                )
                l1, mse = reconstruction_loss(vae.decode(z).float(), video, cfg)
                loss = cfg.l1_weight * l1 + cfg.mse_weight * mse
                kind = "dit"
            else:
                video = random_crop(next(stream).video, CROP, generator)
                loss, _ = vae_loss(vae, video, cfg)
                kind = "encoder"
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.decoder.parameters(), cfg.grad_clip)
        optimizer.step()
        log.append({"step": step, "kind": kind, "loss": loss.item()})
    vae.eval()
    out = Path(args.output)
    release_with_vae(args.start, vae, out, {"script": "train_decoder_on_dit.py", **vars(args)})
    out.with_suffix(".log.json").write_text(json.dumps(log))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
