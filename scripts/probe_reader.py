"""How often a release's prompt reader reads a split's prompts as the judge does.

For each split and seed, reads the first N prompts with the release's prompt reader
(`vidora.models.prompt_reader`) and compares each object's (colour, shape, motion) with what the
judge's parser (`vidora.world.captions.parse_prompt`, which knows both wordings' words) reads.
Prints one JSON object: per split, prompts read right whole, objects read right, prompts the
reader could not read (drawn as written), and, per attribute, how often a read object's concept
was right, with a few examples of each kind of miss. No video is drawn.

It also reads `NOVEL`: shape and motion phrases in neither wording's captions, written for
this probe before any reader read them, each in three sentences (a training-style one, a list,
and one in neither wording's frames).

With `--synonyms-out` it also fits a reader on training captions without one training phrase
per concept (`vidora.train.prompt_reader.left_out_synonyms`) and reads 400 training captions
that use them: the reader on words it never saw, with no held-out word involved. With
`--frames-out` it fits one without the last training templates
(`vidora.train.prompt_reader.FRAMES_OUT`) and reads 400 training captions written in them: the
reader in sentence frames it never saw. Both fit their reader's kind readout as the release's.

    python scripts/probe_reader.py --seeds 0,1,2 -n 200 --synonyms-out --frames-out
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

from vidora.eval.wording import PHRASES
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.train.prompt_reader import frames_out_reading, synonyms_out_reading
from vidora.world.captions import parse_prompt
from vidora.world.splits import get_clip

SPLITS = ("eval-seen", "eval-wording", "eval-composition")
ATTRIBUTES = ("colour", "shape", "motion")

NOVEL: dict[str, dict[str, tuple[str, ...]]] = {
    "motion": {
        "left": ("heading left", "going left", "moving leftwards", "shifting to the left",
                 "sliding leftwards"),
        "right": ("heading right", "going right", "moving rightwards", "shifting to the right",
                  "sliding rightwards"),
        "up": ("going up", "floating upwards", "climbing", "soaring", "lifting off"),
        "down": ("going down", "dropping", "plummeting", "sliding downwards", "heading down"),
        "still": ("staying put", "holding still", "frozen in place", "not budging", "resting"),
        "bouncing": ("bobbing", "jumping up and down", "springing", "leaping",
                     "bouncing around"),
    },
    "shape": {
        "circle": ("sphere", "round shape", "ring", "disk", "circular shape"),
        "square": ("rectangle", "square shape", "brick", "quadrilateral", "four-sided shape"),
        "triangle": ("triangular block", "cone", "arrowhead", "three-sided shape", "delta"),
    },
}  # fmt: skip
"""Phrases in neither wording, per kind and concept (written before any reader read them)."""
NOVEL_SENTENCES = (
    "A red {shape} {motion} on a black background.",
    "blue {shape}, {motion}, gray backdrop",
    "There is a green {shape} {motion} in front of a navy canvas.",
)
"""Each novel phrase is read in these, with "circle" or "moving left" for the other slot."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a release file (default: the built-in one)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("-n", type=int, default=200, help="prompts per split and seed")
    parser.add_argument("--synonyms-out", action="store_true", help="also the left-out check")
    parser.add_argument("--frames-out", action="store_true", help="also the frames-out check")
    args = parser.parse_args()
    pipe = TextToVideoPipeline.from_pretrained(args.checkpoint)
    if pipe.reader is None:
        raise SystemExit("this release has no prompt reader (vidora train reader adds one)")
    report = {}
    for split in SPLITS:
        tally: Counter = Counter()
        misses: list[dict] = []
        for seed in map(int, args.seeds.split(",")):
            for index in range(args.n):
                prompt = get_clip(split, index, seed).caption
                truth = parse_prompt(prompt).objects
                reading = pipe.reader.read(pipe.text_encoder, prompt)
                tally["prompts"] += 1
                tally["objects"] += len(truth)
                if reading is None:
                    tally["unread"] += 1
                    misses.append({"prompt": prompt, "read_as": None})
                    continue
                got = [(o.colour, o.shape, o.motion) for o in reading.objects]
                want = [(o.colour, o.shape, o.motion) for o in truth]
                tally["objects_read"] += len(got)
                tally["objects_right"] += sum(g == w for g, w in zip(got, want, strict=False))
                if len(got) == len(want):
                    for g, w in zip(got, want, strict=True):
                        for k, attribute in enumerate(ATTRIBUTES):
                            tally[f"{attribute}_right"] += g[k] == w[k]
                        tally["paired"] += 1
                else:
                    tally["wrong_count"] += 1
                if got == want:
                    tally["right"] += 1
                else:
                    misses.append({"prompt": prompt, "read_as": reading.prompt})
        paired = max(tally["paired"], 1)
        report[split] = {
            "prompts": tally["prompts"],
            "read_right": tally["right"] / tally["prompts"],
            "objects_right": tally["objects_right"] / tally["objects"],
            "unread": tally["unread"],
            "wrong_object_count": tally["wrong_count"],
            **{f"{a}_right": tally[f"{a}_right"] / paired for a in ATTRIBUTES},
            "misses": misses[:12],
        }
    report["novel_phrases"] = novel_reading(pipe)
    fallback = pipe.reader.fallback_kind
    kinds = {
        "kind_context": pipe.reader.kind_context,
        "fallback_context": fallback[0] if fallback else None,
    }
    if args.synonyms_out:
        report["synonyms_out"] = synonyms_out_reading(pipe.text_encoder, **kinds)
    if args.frames_out:
        report["frames_out"] = frames_out_reading(pipe.text_encoder, **kinds)
    print(json.dumps(report, indent=1))


def novel_reading(pipe: TextToVideoPipeline) -> dict:
    """How often the reader names a `NOVEL` phrase's concept (one object read, that concept)."""
    captions = {
        p
        for kind in NOVEL
        for table in PHRASES[kind].values()
        for phrases in table.values()
        for p in phrases
    }
    right = total = 0
    misses: set[str] = set()
    for kind, table in NOVEL.items():
        for concept, phrases in table.items():
            for phrase in phrases:
                if phrase in captions:
                    raise ValueError(f"{phrase!r} is in a wording's captions: not novel")
                for sentence in NOVEL_SENTENCES:
                    text = sentence.format(
                        shape=phrase if kind == "shape" else "circle",
                        motion=phrase if kind == "motion" else "moving left",
                    )
                    reading = pipe.reader.read(pipe.text_encoder, text)
                    read = None
                    if reading is not None and len(reading.objects) == 1:
                        read = getattr(reading.objects[0], kind)
                    right += read == concept
                    total += 1
                    if read != concept:
                        misses.add(f"{phrase} -> {read}")
    return {"read_right": right / total, "read": total, "misses": sorted(misses)}


if __name__ == "__main__":
    main()
