"""How object-by-object composition's two settings move a split's two-object prompts.

Draws the two-object prompts among a split's first N clips (one seed) with the release's
sampling, one object at a time (`vidora.pipelines.composition`) at the given tries and
foreground spread, or whole (`--whole`, as without composition), and prints one JSON line: the
prompts, how many the judge finds whole, how many of their objects adhere and move as told, and
the seconds it took. With `--seconds 8` or 12 it also judges the first 4 s alone, and measures
each object's jump at every seam (`seam_jumps`, as the protocol's extension check does for one
object). The seventeenth release's settings were chosen with it on eval-seen's seed 0 (MODEL.md,
"v17: one object at a time").

    python scripts/probe_composition.py --split eval-seen --seed 0 --tries 3 --spread 4
    python scripts/probe_composition.py -n 76 --seconds 8   # the first 24 two-object prompts
"""

from __future__ import annotations

import json
import time
from dataclasses import replace

import numpy as np
from probe_common import split_parser
from rich.progress import track

import vidora.pipelines.composition as composition
from vidora.eval.model import seam_jumps
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.world.judge import analyse, judge, scene_prompt
from vidora.world.splits import get_clip


def main() -> None:
    parser = split_parser(__doc__)
    parser.add_argument("--tries", type=int, default=composition.TRIES)
    parser.add_argument("--spread", type=float, default=composition.FOREGROUND_SPREAD)
    parser.add_argument("--whole", action="store_true", help="draw each prompt whole")
    parser.add_argument("--seconds", type=int, default=4, choices=(4, 8, 12))
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
    whole = objects = moving = whole_4s = objects_4s = moving_4s = 0
    jumps: list[float] = []
    for clip in track(clips, description=f"{args.split} seed {args.seed}"):
        video = pipe(
            clip.caption, size=clip.scene.size, seed=clip.index, seconds=args.seconds
        ).videos[0]
        prompt = scene_prompt(clip.scene)
        verdict = judge(video, prompt)
        whole += verdict.adheres
        objects += sum(o.adheres for o in verdict.objects)
        moving += sum(o.found and o.motion_ok for o in verdict.objects)
        if args.seconds > 4:
            first = judge(video[:32], prompt)
            whole_4s += first.adheres
            objects_4s += sum(o.adheres for o in first.objects)
            moving_4s += sum(o.found and o.motion_ok for o in first.objects)
            tracks = analyse(video).tracks
            for obj in clip.scene.objects:
                if obj.colour in tracks:
                    jumps.extend(seam_jumps(tracks[obj.colour].centroids))
    figures = {
        "split": args.split,
        "seed": args.seed,
        "composed": not args.whole,
        "tries": args.tries,
        "spread": args.spread,
        "seconds": args.seconds,
        "prompts": len(clips),
        "whole": whole,
        "objects_adhering": objects,
        "objects_moving_as_told": moving,
        "objects": 2 * len(clips),
    }
    if args.seconds > 4:
        figures |= {
            "whole_first_4s": whole_4s,
            "objects_adhering_first_4s": objects_4s,
            "objects_moving_as_told_first_4s": moving_4s,
            "seams_measured": len(jumps),
            "seams_over_4px": int(sum(j > 4 for j in jumps)),
            "seam_px_max": round(float(np.max(jumps)), 2) if jumps else None,
        }
    figures["time_s"] = round(time.perf_counter() - start)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
