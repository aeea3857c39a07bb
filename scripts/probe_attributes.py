"""How well a DiT's tokens name their object's colour, shape, motion and size, by noise level.

A linear head (`AttributeHead`) reads the tokens after block K of a release's DiT: trained here
for STEPS steps on the frozen DiT (a fresh head), or, with --steps 0 on a release trained with
`attribute_weight`, its own head as trained. Then measured on batches it was not trained on,
per flow-time bucket (0 is noise). The clips come from a run's latent cache (Shapes World).

    python scripts/probe_attributes.py src/vidora/weights/vidora-shapes-v16.safetensors \\
        runs/dit/latents.safetensors --data-seed 32 --block 2 --steps 400
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from probe_common import BUCKETS, labelled_cache, probe_parser

from vidora.flow import interpolate, sample_timesteps
from vidora.models.dit import DiT
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.train.attributes import ATTRIBUTES
from vidora.train.dit import CaptionedLatents, attribute_loss


def main() -> None:
    parser = probe_parser(__doc__, batches=25)
    parser.add_argument("--block", type=int, default=2)
    parser.add_argument("--steps", type=int, default=400, help="0: the release's own head")
    args = parser.parse_args()

    pipe = TextToVideoPipeline.from_pretrained(args.release)
    classes = tuple(map(len, ATTRIBUTES.values()))
    cfg = replace(pipe.dit.cfg, attribute_classes=classes, attribute_block=args.block)
    dit = DiT(cfg)
    missing, _ = dit.load_state_dict(pipe.dit.state_dict(), strict=False)
    if args.steps == 0 and missing:
        raise SystemExit(f"{args.release} has no attribute head at block {args.block}: train one")
    for name, weight in dit.named_parameters():
        weight.requires_grad_(name.startswith("attributes."))
    dit.eval()
    encoder = pipe.text_encoder

    cache = labelled_cache(args.cache, args.data_seed, cfg.patch_size[1:])
    generator = torch.Generator().manual_seed(0)

    def logits_of(batch, grad: bool) -> tuple[torch.Tensor, torch.Tensor]:
        t = sample_timesteps(len(batch.captions), generator, shift=2.0)  # (B,)
        noise = torch.randn(batch.latents.shape, generator=generator)
        text, mask = encoder.encode(batch.captions)
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.set_grad_enabled(grad):
            _, logits = dit(interpolate(batch.latents, noise, t), t, text, mask, attributes=True)
        return t, logits.float()  # (B,), (B, N, classes)

    draws = CaptionedLatents(cache, seed=5)
    optimizer = torch.optim.AdamW(dit.attributes.parameters(), lr=3e-3)
    for step in range(args.steps):
        batch = draws.draw(16, labels=True)
        loss = attribute_loss(logits_of(batch, grad=True)[1], batch.labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0:
            print(f"step {step}: loss {loss.item():.3f}", flush=True)

    held_out = CaptionedLatents(cache, seed=99)
    rows = []  # (attribute, t, cross-entropy, accuracy) per clip
    for _ in range(args.batches):
        batch = held_out.draw(16, labels=True)
        t, logits = logits_of(batch, grad=False)
        targets = batch.labels.flatten(2)  # (B, A, N)
        start = 0
        for a, (name, values) in enumerate(ATTRIBUTES.items()):
            part = logits[..., start : start + len(values)]
            start += len(values)
            for i in range(len(t)):
                shown = targets[i, a] >= 0
                if shown.any():
                    pred, true = part[i][shown], targets[i, a][shown]
                    ce = torch.nn.functional.cross_entropy(pred, true).item()
                    acc = (pred.argmax(-1) == true).float().mean().item()
                    rows.append((name, t[i].item(), ce, acc))
    for name in ATTRIBUTES:
        cells = []
        for low, high in BUCKETS:
            picked = [(c, a) for n, t, c, a in rows if n == name and low <= t < high]
            ce, acc = np.mean([c for c, _ in picked]), 100 * np.mean([a for _, a in picked])
            cells.append(f"t in [{low}, {min(high, 1.0)}): ce {ce:.3f} right {acc:.1f}%")
        print(f"{name:7s}", " | ".join(cells))


if __name__ == "__main__":
    main()
