"""How many Shapes World clips (32 frames) one CPU core renders per minute, per canvas size.

Run: .venv/bin/python bench/bench_render.py [--seconds 3]

Prints, per size, the renderer alone (`render`) and the whole clip (`get_clip` + frames:
scene sampling, caption and render), each as wall-clock and CPU-time rates. Threads are
pinned to one before numpy is imported, so the figure is for a single core.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

from vidora.world.render import render  # noqa: E402
from vidora.world.spec import SIZES  # noqa: E402
from vidora.world.splits import get_clip  # noqa: E402


def _rate(work: Callable[[int], object], seconds: float) -> tuple[float, float]:
    """(clips per wall minute, clips per CPU minute) running work(0), work(1), ... for ~seconds."""
    done, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall0 < seconds:
        work(done)
        done += 1
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return 60 * done / wall, 60 * done / max(cpu, 1e-9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = parser.parse_args()
    header = ("size", "render/min (wall)", "(cpu)", "clip/min (wall)", "(cpu)")
    print("{:>6}  {:>18}  {:>9}  {:>16}  {:>9}".format(*header))
    for size in SIZES:
        # A pool of this size's train scenes, so the object mix is the training mix.
        scenes, index = [], 0
        while len(scenes) < 200:
            clip = get_clip("train", index)
            if clip.scene.size == size:
                scenes.append(clip.scene)
            index += 1
        indices = [i for i in range(index) if get_clip("train", i).scene.size == size]
        render_rate = _rate(lambda k, pool=scenes: render(pool[k % len(pool)]), args.seconds)
        clip_rate = _rate(
            lambda k, pool=indices: get_clip("train", pool[k % len(pool)]).frames(), args.seconds
        )
        print(
            f"{size:>6}  {render_rate[0]:>18,.0f}  {render_rate[1]:>9,.0f}"
            f"  {clip_rate[0]:>16,.0f}  {clip_rate[1]:>9,.0f}"
        )


if __name__ == "__main__":
    main()
