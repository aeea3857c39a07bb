"""Two processes under torchrun, each with half the batch, reach the same weights as one process
with the whole batch.

This file is also the script torchrun runs: `python -m torch.distributed.run --nproc_per_node 2
tests/train/test_ddp.py OUT_DIR` trains the toy model on every rank and saves each rank's weights.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, TensorDataset

from vidora.train import (
    EMA,
    cleanup_distributed,
    is_main_process,
    make_sampler,
    per_rank_batch_size,
    setup_distributed,
    unwrap_model,
)

GLOBAL_BATCH = 8
STEPS = 12  # 64 samples / 8 = 8 steps per epoch: crosses an epoch boundary and a reshuffle


def train_toy(steps: int = STEPS, global_batch: int = GLOBAL_BATCH) -> dict[str, Tensor]:
    """A small conv net trained with AdamW + EMA, in float64 so the only difference between
    world sizes is summation order (~1e-16), not float32 rounding."""
    info = setup_distributed("cpu")
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv1d(2, 8, 3, padding=1), nn.GELU(), nn.Flatten(), nn.Linear(8 * 16, 4)
    ).double()
    if info.world_size > 1:
        model = DistributedDataParallel(model)
    g = torch.Generator().manual_seed(123)
    inputs = torch.randn(64, 2, 16, generator=g, dtype=torch.float64)
    targets = torch.randn(64, 4, generator=g, dtype=torch.float64)
    dataset = TensorDataset(inputs, targets)
    sampler = make_sampler(dataset, shuffle=True, seed=7)
    loader = DataLoader(dataset, batch_size=per_rank_batch_size(global_batch), sampler=sampler)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.01)
    ema = EMA(model, decay=0.9)
    step, epoch = 0, 0
    while step < steps:
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = F.mse_loss(model(x), y)
            optimizer.zero_grad()
            loss.backward()  # DDP averages gradients over ranks here
            optimizer.step()
            ema.update(model)
            step += 1
            if step == steps:
                break
        epoch += 1
    weights = {f"model.{k}": v.clone() for k, v in unwrap_model(model).state_dict().items()}
    weights.update({f"ema.{k}": v.clone() for k, v in ema.shadow.items()})
    return weights


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_with_the_same_global_batch(tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    single = train_toy()

    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["OMP_NUM_THREADS"] = "1"
    command = [
        sys.executable, "-m", "torch.distributed.run",
        "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(free_port()),
        __file__, str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    assert (tmp_path / "main.txt").read_text() == "0"  # only rank 0 is the main process
    assert ranks[0].keys() == single.keys()
    for name, expected in single.items():
        assert torch.equal(ranks[0][name], ranks[1][name]), f"ranks disagree on {name}"
        torch.testing.assert_close(ranks[0][name], expected, rtol=1e-9, atol=1e-12, msg=name)
    # and training did move the weights, so the match is not trivial
    torch.manual_seed(0)
    assert not torch.allclose(single["model.3.weight"], nn.Linear(8 * 16, 4).double().weight)


def test_setup_is_a_no_op_without_torchrun(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    info = setup_distributed("cpu")
    assert (info.rank, info.local_rank, info.world_size) == (0, 0, 1)
    assert info.is_main and is_main_process() and not dist.is_initialized()
    assert info.device == torch.device("cpu")
    cleanup_distributed()  # harmless when nothing was set up


def test_half_set_torchrun_environment_is_reported(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("RANK", raising=False)
    with pytest.raises(ValueError, match="launch with torchrun"):
        setup_distributed("cpu")


def test_bad_device_is_reported():
    with pytest.raises(ValueError, match="device"):
        setup_distributed("tpu")


def test_global_batch_must_split_evenly():
    assert per_rank_batch_size(8, world_size=2) == 4
    with pytest.raises(ValueError, match="multiple of the 3 processes"):
        per_rank_batch_size(8, world_size=3)


def worker(out_dir: Path) -> None:
    weights = train_toy()
    rank = dist.get_rank()
    torch.save(weights, out_dir / f"rank{rank}.pt")
    if is_main_process():
        (out_dir / "main.txt").write_text(str(rank))
    cleanup_distributed()


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
