"""What both training stages share: device and precision choice, the LR schedule, the loss log."""

from __future__ import annotations

import contextlib
import json
import math
from functools import cache
from pathlib import Path

import torch


@cache
def cpu_has_native_bf16() -> bool:
    """True where the CPU multiplies bf16 in hardware (AVX512-BF16 or AMX).

    Without it PyTorch emulates bf16 and is several times slower than fp32 (measured on this
    project's 2-core CI machine, which lacks both), so autocast must not be switched on blindly.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast(mode: str, device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast for 'bf16'; none for 'off'; for 'auto', bf16 where the hardware has it."""
    if mode not in ("auto", "bf16", "off"):
        raise ValueError(f"autocast must be 'auto', 'bf16' or 'off', not {mode!r}")
    native = device.type == "cuda" or cpu_has_native_bf16()
    if mode == "bf16" or (mode == "auto" and native):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def learning_rate(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to a tenth of it at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


class LossLog:
    """Appends one JSON line per logged step to `run_dir/log.jsonl` and plots it to `loss.png`."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / "log.jsonl"
        self.plot_path = run_dir / "loss.png"

    def append(self, record: dict) -> None:
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def plot(self, keys: tuple[str, ...]) -> Path:
        """A PNG of each key against step (log scale): the loss curves of the run."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        records = self.records()
        fig, axes = plt.subplots(1, len(keys), figsize=(4.5 * len(keys), 3.2), squeeze=False)
        for ax, key in zip(axes[0], keys, strict=True):
            points = [(r["step"], r[key]) for r in records if key in r]
            if points:
                ax.plot(*zip(*points, strict=True), lw=1)
            ax.set_title(key)
            ax.set_xlabel("step")
            ax.set_yscale("log")
            ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.plot_path, dpi=100)
        plt.close(fig)
        return self.plot_path
