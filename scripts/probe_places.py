"""Does each object of a two-object video move as its words say, or as its starting place does?

A Shapes World object stays inside the frame, so where it starts says much of how it moves (one
starting at the left edge moves right or not sideways at all). For eval-seen's two-object clips
whose objects are told different motions, image-to-video from the clip's true first frame, then
from that frame with the two objects' starting places swapped (each where the other began; the
prompt unchanged). The judge reads each object's motion: its own (the words'), the other
object's, or neither. A model that binds the words moves the objects as told either way; one that
reads the places moves them as the other was told once the places are swapped.

    python scripts/probe_places.py --seeds 0,1
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

from rich.progress import track

from vidora.eval.harness import Sample, binding
from vidora.pipelines.text_to_video import TextToVideoPipeline
from vidora.world.judge import judge, scene_prompt
from vidora.world.render import render
from vidora.world.scene import Scene
from vidora.world.splits import Clip, get_clip


def swap_places(scene: Scene) -> Scene:
    """The scene with its two objects' starting places exchanged."""
    first, second = scene.objects
    return replace(
        scene,
        objects=(
            replace(first, x=second.x, y=second.y),
            replace(second, x=first.x, y=first.y),
        ),
    )


def judged(pipe: TextToVideoPipeline, clip: Clip, scene: Scene) -> Sample:
    """Image-to-video from `scene`'s first frame under `clip`'s caption, judged against the
    clip's prompt."""
    image = render(scene, 1)[0]
    video = pipe(clip.caption, size=scene.size, seed=clip.index, image=image).videos[0]
    return Sample(clip, judge(video, scene_prompt(clip.scene)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--release", default=None, help="a release file (default: built-in)")
    parser.add_argument("--seeds", default="0,1", help="eval-seen seeds, comma-separated")
    parser.add_argument("-n", type=int, default=200, help="clips per seed to pick from")
    args = parser.parse_args()

    pipe = TextToVideoPipeline.from_pretrained(args.release)
    seeds = [int(s) for s in args.seeds.split(",")]
    clips = [
        clip
        for seed in seeds
        for clip in (get_clip("eval-seen", i, seed) for i in range(args.n))
        if len(clip.scene.objects) == 2
        and clip.scene.objects[0].motion != clip.scene.objects[1].motion
    ]
    result = {}
    for variant, place in (("true places", lambda s: s), ("places swapped", swap_places)):
        samples = [
            judged(pipe, clip, place(clip.scene)) for clip in track(clips, description=variant)
        ]
        result[variant] = binding(samples, "motion")  # own / other / neither, and shares
    print(json.dumps({"clips": len(clips), **result}, indent=2))


if __name__ == "__main__":
    main()
