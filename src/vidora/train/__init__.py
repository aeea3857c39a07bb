"""Training: one linear main() per stage (dit.py, vae.py), and the parts they share --
distributed setup, an EMA of the weights, and checkpoints (one safetensors file per release,
an optimizer file beside it to resume)."""

from __future__ import annotations

from vidora.train.checkpoint import (
    load_checkpoint,
    load_checkpoint_info,
    load_training_state,
    optimizer_path,
    save_checkpoint,
    save_training_state,
)
from vidora.train.distributed import (
    DistInfo,
    all_reduce_mean,
    barrier,
    cleanup_distributed,
    get_rank,
    get_world_size,
    is_main_process,
    make_sampler,
    per_rank_batch_size,
    setup_distributed,
    unwrap_model,
)
from vidora.train.ema import EMA

__all__ = [
    "EMA",
    "DistInfo",
    "all_reduce_mean",
    "barrier",
    "cleanup_distributed",
    "get_rank",
    "get_world_size",
    "is_main_process",
    "load_checkpoint",
    "load_checkpoint_info",
    "load_training_state",
    "make_sampler",
    "optimizer_path",
    "per_rank_batch_size",
    "save_checkpoint",
    "save_training_state",
    "setup_distributed",
    "unwrap_model",
]
