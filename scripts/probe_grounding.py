"""Where a DiT's cross-attention reads each object's words, by noise level and block.

For held-out draws of a run's latent cache (Shapes World), the grounding loss
(`vidora.train.grounding`): the share of attention an object's phrase gets from tokens outside
that object, per flow-time bucket (0 is noise) and per block, for one- and two-object clips;
beside it the share those tokens would get if every token read every word alike (the objects'
share of the tokens). A release trained with `grounding_weight` should sit below it.

    python scripts/probe_grounding.py src/vidora/weights/vidora-shapes-v16.safetensors \\
        runs/dit/latents.safetensors --data-seed 32
"""

from __future__ import annotations

import numpy as np
import torch
from probe_common import BUCKETS, labelled_cache, probe_parser

from vidora.flow import interpolate, sample_timesteps
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.train.dit import CaptionedLatents
from vidora.train.grounding import Grounding, ground_phrases, grounding_loss


def main() -> None:
    parser = probe_parser(__doc__, batches=20)
    args = parser.parse_args()

    pipe = TextToVideoPipeline.from_pretrained(args.release)
    dit, encoder = pipe.dit.eval(), pipe.text_encoder
    cache = labelled_cache(args.cache, args.data_seed, dit.cfg.patch_size[1:])
    generator = torch.Generator().manual_seed(0)
    draws = CaptionedLatents(cache, seed=99)  # not a training run's draws (seed 0 and up)

    rows = []  # (objects, t, block losses (depth,), uniform loss) per clip
    for _ in range(args.batches):
        batch = draws.draw(16, labels=True)
        t = sample_timesteps(len(batch.captions), generator, shift=2.0)  # (B,)
        noise = torch.randn(batch.latents.shape, generator=generator)
        text, mask = encoder.encode(batch.captions)
        grounding = ground_phrases(
            batch.phrases, encoder.token_offsets(batch.captions), [True] * len(t)
        )
        with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
            x_t = interpolate(batch.latents, noise, t)
            _, maps = dit(x_t, t, text, mask, cross_maps=True)  # (depth, B, N, L)
        maps = maps.float()
        uniform = mask[None, :, None, :].float().expand_as(maps[:1])  # every word read alike
        uniform = uniform / uniform.sum(-1, keepdim=True)
        for i in range(len(t)):
            one = Grounding(grounding.words[i : i + 1], grounding.colours[i : i + 1])
            labels = batch.labels[i : i + 1]
            if not (one.words.any() and (labels[:, 0] >= 0).any()):
                continue
            blocks = [grounding_loss(m[None, i : i + 1], one, labels).item() for m in maps]
            even = grounding_loss(uniform[:, i : i + 1], one, labels).item()
            rows.append((len(batch.phrases[i]), t[i].item(), np.array(blocks), even))

    for objects in (1, 2):
        print(f"== {objects}-object clips: share read outside the object, per block (all blocks)")
        for low, high in BUCKETS:
            picked = [r for r in rows if r[0] == objects and low <= r[1] < high]
            if not picked:
                continue
            blocks = np.mean([r[2] for r in picked], axis=0)
            even = np.mean([r[3] for r in picked])
            cells = " ".join(f"{b:.3f}" for b in blocks)
            print(
                f"t in [{low}, {min(high, 1.0)}) {len(picked):3d} clips: {cells} "
                f"(mean {blocks.mean():.3f}; read alike: {even:.3f})"
            )


if __name__ == "__main__":
    main()
