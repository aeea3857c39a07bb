"""How object-by-object composition's two settings move a split's two-object prompts.

Draws the two-object prompts among a split's first N clips (one seed) with the release's
sampling, one object at a time (`vidora.pipelines.composition`) at the given tries and
foreground spread, or whole (`--whole`, as without composition), and prints one JSON line: the
prompts, how many the judge finds whole, how many of their objects adhere, and the seconds it
took. The seventeenth release's settings were chosen with it on eval-seen's seed 0 (MODEL.md,
"v17: one object at a time").

    python scripts/probe_composition.py --split eval-seen --seed 0 --tries 3 --spread 4
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

from rich.progress import track

import vidora.pipelines.composition as composition
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.world.judge import judge, scene_prompt
from vidora.world.splits import get_clip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a release file (default: the built-in one)")
    parser.add_argument("--split", default="eval-seen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", type=int, default=200, help="clips to look through")
    parser.add_argument("--tries", type=int, default=composition.TRIES)
    parser.add_argument("--spread", type=float, default=composition.FOREGROUND_SPREAD)
    parser.add_argument("--whole", action="store_true", help="draw each prompt whole")
    args = parser.parse_args()
    if args.tries < 1 or args.spread <= 0:
        parser.error("--tries must be >= 1 and --spread > 0")
    composition.TRIES = args.tries  # both read when a prompt is drawn
    composition.FOREGROUND_SPREAD = args.spread

    pipe = TextToVideoPipeline.from_pretrained(args.checkpoint)
    pipe.defaults = replace(pipe.defaults, compose_objects=not args.whole)
    clips = [get_clip(args.split, i, args.seed) for i in range(args.n)]
    clips = [c for c in clips if len(c.scene.objects) == 2]
    start = time.perf_counter()
    whole = objects = 0
    for clip in track(clips, description=f"{args.split} seed {args.seed}"):
        video = pipe(clip.caption, size=clip.scene.size, seed=clip.index).videos[0]
        verdict = judge(video, scene_prompt(clip.scene))
        whole += verdict.adheres
        objects += sum(o.adheres for o in verdict.objects)
    figures = {
        "split": args.split,
        "seed": args.seed,
        "composed": not args.whole,
        "tries": args.tries,
        "spread": args.spread,
        "prompts": len(clips),
        "whole": whole,
        "objects_adhering": objects,
        "objects": 2 * len(clips),
        "seconds": round(time.perf_counter() - start),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
