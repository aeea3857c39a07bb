"""Multi-process training under torchrun, and the same code path in a single plain process.

    torchrun --nproc_per_node 2 -m vidora.cli train ...     # or `python -m torch.distributed.run`

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; `setup_distributed` reads them (env://) and
joins the group, with NCCL on GPUs and Gloo on CPUs. Without WORLD_SIZE it does nothing and
reports rank 0 of 1, so a trainer never branches on "am I distributed?". The one rule for equal
results at any world size: each rank takes global_batch / world_size samples, and
`make_sampler` deals them so the ranks' batches together are the single process's batch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import Dataset, DistributedSampler


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int
    """Global rank, 0 .. world_size - 1."""
    local_rank: int
    """Rank on this machine; picks the GPU."""
    world_size: int
    """Number of processes (1 when not launched by torchrun)."""
    device: torch.device
    """The device this process trains on."""

    @property
    def is_main(self) -> bool:
        """Rank 0 logs, evaluates and writes checkpoints."""
        return self.rank == 0


def _env_int(name: str) -> int:
    value = os.environ.get(name)
    if value is None or not value.isdigit():
        raise ValueError(
            f"WORLD_SIZE is set but {name}={value!r}; launch with torchrun, which sets RANK, "
            "LOCAL_RANK and WORLD_SIZE together"
        )
    return int(value)


def setup_distributed(device: str | None = None) -> DistInfo:
    """Join the torchrun process group (env://), or describe a lone process.

    `device` is "cpu" or "cuda" (default: cuda when available); under torchrun each rank takes
    GPU LOCAL_RANK. Calling it again after the group exists is harmless.
    """
    kind = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda'; got {device!r}")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is visible")
    if "WORLD_SIZE" not in os.environ:
        return DistInfo(rank=0, local_rank=0, world_size=1, device=torch.device(kind))
    rank, local_rank, world_size = _env_int("RANK"), _env_int("LOCAL_RANK"), _env_int("WORLD_SIZE")
    if kind == "cuda":
        torch.cuda.set_device(local_rank)
        target = torch.device("cuda", local_rank)
    else:
        target = torch.device("cpu")
    if not dist.is_initialized():
        backend = "nccl" if kind == "cuda" else "gloo"
        dist.init_process_group(backend=backend, init_method="env://")
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=target)


def cleanup_distributed() -> None:
    """Leave the process group (a no-op in a lone process); call at the end of main().

    The barrier first: a rank that tears its group down while another still talks to it can
    abort the whole run ("terminate called without an active exception") after training is done.
    """
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def get_rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def get_world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def is_main_process() -> bool:
    """True on rank 0, and in a lone process."""
    return get_rank() == 0


def barrier() -> None:
    """Wait for every rank (e.g. before reading a checkpoint rank 0 just wrote)."""
    if dist.is_initialized():
        dist.barrier()


def per_rank_batch_size(global_batch: int, world_size: int | None = None) -> int:
    """global_batch / world_size, refusing a split that would change the effective batch."""
    world_size = get_world_size() if world_size is None else world_size
    if global_batch <= 0 or global_batch % world_size:
        raise ValueError(
            f"global batch {global_batch} must be a positive multiple of the {world_size} "
            "processes; change --batch-size or --nproc_per_node"
        )
    return global_batch // world_size


def make_sampler(
    dataset: Dataset, shuffle: bool = True, seed: int = 0, drop_last: bool = True
) -> DistributedSampler:
    """A DistributedSampler at every world size (1 replica in a lone process).

    With the same seed the shuffled order is the same whatever the world size, and rank r
    takes positions r, r + W, r + 2W, ...: the j-th batches of all ranks together are the
    j-th global batch of a single process. Call `sampler.set_epoch(epoch)` every epoch to
    reshuffle. drop_last avoids the padding by repeated samples when the length does not split.
    """
    return DistributedSampler(
        dataset,
        num_replicas=get_world_size(),
        rank=get_rank(),
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )


def all_reduce_mean(value: Tensor) -> Tensor:
    """The mean of `value` over ranks (for logging a loss every rank computed on its shard)."""
    if not dist.is_initialized():
        return value
    out = value.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / dist.get_world_size()


def unwrap_model(module: nn.Module) -> nn.Module:
    """The bare model inside DDP / DataParallel / torch.compile wrappers, whose state_dict keys
    are the ones checkpoints use."""
    while True:
        if isinstance(module, DistributedDataParallel | nn.DataParallel):
            module = module.module
        elif isinstance(getattr(module, "_orig_mod", None), nn.Module):
            module = module._orig_mod
        else:
            return module
