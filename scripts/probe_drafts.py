"""How often one of K drafts of an object is right, and whether the DiT's own loss can tell which.

For each prompt among a split's first N clips, each object is drawn alone from its own cut of
the prompt (`object_prompts`, as the release composes) K times: the first draft from the seed
the release would use, the rest from `part_seed`. The judge reads every draft against that
object alone. Prints one JSON line: the objects, how many of their first drafts adhere (what the
release draws), the mean over drafts, how many have any adherent draft (what a perfect pick of K
would reach), and how many the pick by the DiT's own score gets. That score is the relative drop
in the flow loss the prompt buys over the empty prompt, on the draft noised again at five times
(the same noise for every draft): a diffusion model's own estimate of how well a sample fits a
prompt (Li et al., 2023, "Your Diffusion Model is Secretly a Zero-Shot Classifier").

    python scripts/probe_drafts.py --split eval-seen --seed 0 -n 200 --drafts 4
    python scripts/probe_drafts.py -n 80 --save runs/drafts   # keep the frames to score later
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from probe_common import split_parser
from rich.progress import track

import vidora.pipelines.composition as composition
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.world.captions import object_prompts
from vidora.world.judge import judge, scene_prompt
from vidora.world.splits import get_clip

SCORE_TIMES = (0.2, 0.35, 0.5, 0.65, 0.8)
"""Where along the path (0 noise, 1 data) each draft is noised again to be scored."""


def own_score(
    pipe: TextToVideoPipeline, latents: torch.Tensor, text: torch.Tensor, mask: torch.Tensor
) -> np.ndarray:
    """(K, z, F, h, w) drafts of one prompt -> (K,) the share of the empty prompt's flow loss
    the prompt takes away, averaged over `SCORE_TIMES`; `text` holds the prompt's states K
    times, then the empty prompt's K times."""
    k = len(latents)
    generator = torch.Generator().manual_seed(0)
    cond = torch.zeros(2 * k, latents.shape[2], dtype=torch.bool)
    scores = []
    for t in SCORE_TIMES:
        noise = torch.randn(latents.shape[1:], generator=generator).expand_as(latents)
        x = (1 - t) * noise + t * latents  # (K, z, F, h, w)
        v = pipe.dit(torch.cat([x, x]), torch.full((2 * k,), t), text, mask, cond)
        error = ((v - torch.cat([latents - noise] * 2)) ** 2).flatten(1).mean(1)  # (2K,)
        prompted, empty = error[:k], error[k:]
        scores.append(((empty - prompted) / empty).numpy())
    return np.mean(scores, axis=0)


def main() -> None:
    parser = split_parser(__doc__)
    parser.add_argument("--drafts", type=int, default=4)
    parser.add_argument("--save", type=Path, help="a folder for each clip's drafts (.npy)")
    args = parser.parse_args()
    if args.drafts < 1:
        parser.error("--drafts must be >= 1")
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)

    pipe = TextToVideoPipeline.from_pretrained(args.checkpoint)
    steps, guidance = pipe.defaults.steps, pipe.defaults.guidance
    k = args.drafts
    first = mean = any_ = picked = 0
    rows = []
    start = time.perf_counter()
    clips = [get_clip(args.split, i, args.seed) for i in range(args.n)]
    for clip in track(clips, description=f"{args.split} seed {args.seed}"):
        parts = object_prompts(clip.caption)
        if len(parts) != len(clip.scene.objects):
            continue  # a prompt the release draws whole
        width, height = map(int, clip.scene.size.split("x"))
        adheres = []
        with torch.no_grad():
            for part_index, (part, obj) in enumerate(zip(parts, clip.scene.objects, strict=True)):
                seeds = [
                    clip.index
                    if part_index == 0 and attempt == 0
                    else composition.part_seed(clip.index, part_index, attempt)
                    for attempt in range(k)
                ]
                text, mask = pipe._encode_text([part] * k + [""] * k)
                latents = pipe._sample(
                    text,
                    mask,
                    [torch.Generator().manual_seed(s) for s in seeds],
                    width,
                    height,
                    steps,
                    guidance,
                    None,
                    lambda share: None,
                )  # (K, z, F, h, w)
                frames = pipe._decode(latents)[:, :32]  # (K, 32, H, W, 3)
                alone = scene_prompt(replace(clip.scene, objects=(obj,)))
                verdicts = [bool(judge(f, alone).adheres) for f in frames]
                score = own_score(pipe, latents, text, mask)
                first += verdicts[0]
                mean += float(np.mean(verdicts))
                any_ += any(verdicts)
                picked += verdicts[int(score.argmax())]
                adheres.append(verdicts)
                if args.save:
                    np.save(args.save / f"{clip.index:04d}-{part_index}.npy", frames)
        rows.append({"index": clip.index, "parts": list(parts), "adheres": adheres})
    if args.save:
        (args.save / "drafts.json").write_text(json.dumps(rows))
    objects = sum(len(r["adheres"]) for r in rows)
    figures = {
        "split": args.split,
        "seed": args.seed,
        "drafts": k,
        "objects": objects,
        "first_draft": first,
        "mean_draft": round(mean, 1),
        "any_draft": any_,
        "picked_by_own_score": picked,
        "seconds": round(time.perf_counter() - start),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
