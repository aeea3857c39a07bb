"""What the probe scripts share: their arguments, a run's labelled latent cache, the noise buckets.

Imported by the probes (run as `python scripts/NAME.py`, so this folder is on the import path).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from vidora.train.config import DataConfig
from vidora.train.dit import LatentCache, add_object_labels

BUCKETS = ((0.0, 0.3), (0.3, 0.6), (0.6, 1.01))
"""Flow-time buckets a probe reports by (0 is noise)."""


def probe_parser(doc: str, batches: int) -> argparse.ArgumentParser:
    """A parser with the arguments every probe takes: the release, the run's cache, its data
    seed and how many held-out batches of 16 to measure."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("release")
    parser.add_argument("cache", help="a DiT run's latents.safetensors (Shapes World)")
    parser.add_argument("--data-seed", type=int, required=True, help="the run's data.seed")
    parser.add_argument("--batches", type=int, default=batches, help="held-out batches of 16")
    return parser


def split_parser(doc: str) -> argparse.ArgumentParser:
    """A parser with the arguments of the probes that draw a split's prompts with a release:
    the release, the split, its seed and how many of its first clips to look through."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--checkpoint", help="a release file (default: the built-in one)")
    parser.add_argument("--split", default="eval-seen")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-n", type=int, default=200, help="clips to look through")
    return parser


def labelled_cache(path: str, data_seed: int, patch: tuple[int, int]) -> LatentCache:
    """A run's Shapes World latent cache with each DiT token's object labels
    (`add_object_labels`) for tokens of `patch` latent cells."""
    cache = LatentCache.load(Path(path), DataConfig(source="shapes", seed=data_seed))
    add_object_labels(cache, patch, continuation=False)
    return cache
