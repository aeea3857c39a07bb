"""Checkpoints: one safetensors file with config + meta in its header; resume state beside it;
no save, however interrupted, breaks the last good file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

import vidora.train.checkpoint as ckpt
from vidora.train import (
    EMA,
    load_checkpoint,
    load_checkpoint_info,
    load_training_state,
    optimizer_path,
    save_checkpoint,
    save_training_state,
)

CONFIG = {"width": 64, "depth": 2, "patch": [1, 2, 2], "vae": {"latent_channels": 4}}


def tiny_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2))


def train_steps(model: nn.Module, opt: torch.optim.Optimizer, ema: EMA, steps: int) -> None:
    g = torch.Generator().manual_seed(5)
    for _ in range(steps):
        x = torch.randn(16, 4, generator=g)
        loss = (model(x) - x[:, :2]).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        ema.update(model)


def test_round_trip_keeps_tensors_config_and_meta(tmp_path):
    tensors = {
        "w": torch.randn(3, 4),
        "half": torch.randn(5, dtype=torch.bfloat16),
        "count": torch.arange(6),
        "view": torch.randn(4, 6)[:, 1:3],  # non-contiguous
    }
    path = save_checkpoint(tmp_path / "m.safetensors", tensors, CONFIG, {"step": 100, "loss": 0.5})
    loaded, config, meta = load_checkpoint(path)
    assert loaded.keys() == tensors.keys()
    for name, tensor in tensors.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor)
    assert config == CONFIG
    assert meta == {"step": 100, "loss": 0.5}
    assert load_checkpoint_info(path) == (CONFIG, meta)


def test_file_is_plain_safetensors_with_json_strings_in_its_header(tmp_path):
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.ones(2)}, CONFIG, {"step": 3})
    with safe_open(path, framework="pt") as f:
        header = f.metadata()
        assert list(f.keys()) == ["w"]
    assert all(isinstance(v, str) for v in header.values())
    assert json.loads(header["config"]) == CONFIG
    assert json.loads(header["meta"]) == {"step": 3}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_tied_weights_are_saved(tmp_path):
    shared = torch.randn(4, 4)
    path = save_checkpoint(tmp_path / "t.safetensors", {"a": shared, "b": shared}, {}, {})
    loaded, _, _ = load_checkpoint(path)
    assert torch.equal(loaded["a"], shared) and torch.equal(loaded["b"], shared)


def test_tuples_come_back_as_lists(tmp_path):
    path = save_checkpoint(tmp_path / "c.safetensors", {}, {"patch": (1, 2, 2)})
    assert load_checkpoint_info(path)[0] == {"patch": [1, 2, 2]}


def test_bad_inputs_say_what_is_wrong(tmp_path):
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(tmp_path / "x.safetensors", {}, {"fn": print})
    with pytest.raises(TypeError, match="'w' is a list"):
        save_checkpoint(tmp_path / "x.safetensors", {"w": [1, 2]}, {})
    assert not any(tmp_path.iterdir())


def test_missing_and_corrupt_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "absent.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(ValueError, match="not a readable safetensors"):
        load_checkpoint(junk)
    good = save_checkpoint(tmp_path / "good.safetensors", {"w": torch.randn(1000)}, CONFIG)
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(ValueError, match="truncated or corrupt|not a readable"):
        load_checkpoint(truncated)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(1)}, foreign)
    with pytest.raises(ValueError, match="not a Vidora checkpoint"):
        load_checkpoint(foreign)


def test_a_crash_mid_save_leaves_the_last_checkpoint_whole(tmp_path, monkeypatch):
    path = save_checkpoint(tmp_path / "m.safetensors", {"w": torch.zeros(8)}, CONFIG, {"step": 1})

    def crash(tensors, filename, metadata=None):
        Path(filename).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt, "save_file", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"w": torch.ones(8)}, CONFIG, {"step": 2})
    tensors, _, meta = load_checkpoint(path)
    assert meta == {"step": 1} and torch.equal(tensors["w"], torch.zeros(8))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]  # no temp left


def test_resume_continues_exactly_where_training_stopped(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ema = EMA(model, decay=0.99)
    train_steps(model, opt, ema, 3)
    path = save_training_state(
        tmp_path / "step_3.safetensors",
        model=model,
        optimizer=opt,
        ema=ema,
        config=CONFIG,
        meta={"step": 3},
        extra={"epoch": 1},
    )
    assert optimizer_path(path) == tmp_path / "step_3.optim.pt" and optimizer_path(path).is_file()

    fresh = tiny_model(seed=1)
    fresh_opt = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    fresh_ema = EMA(fresh, decay=0.5, warmup=False)
    config, meta, extra = load_training_state(path, model=fresh, optimizer=fresh_opt, ema=fresh_ema)
    assert config == CONFIG and meta["step"] == 3 and extra == {"epoch": 1}
    assert fresh_ema.counters() == ema.counters()

    train_steps(model, opt, ema, 2)
    train_steps(fresh, fresh_opt, fresh_ema, 2)
    for a, b in zip(model.state_dict().values(), fresh.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for name in ema.shadow:
        assert torch.equal(ema.shadow[name], fresh_ema.shadow[name])


def test_training_state_weights_load_without_the_optimizer_file(tmp_path):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_training_state(tmp_path / "s.safetensors", model=model, optimizer=opt, config={})
    optimizer_path(path).unlink()
    fresh = tiny_model(seed=2)
    load_training_state(path, model=fresh)
    assert all(
        torch.equal(a, b) for a, b in zip(model.parameters(), fresh.parameters(), strict=True)
    )
    with pytest.raises(FileNotFoundError, match="optim.pt is missing"):
        load_training_state(path, model=fresh, optimizer=opt)


def test_a_mismatched_optimizer_file_is_refused(tmp_path):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    first = save_training_state(tmp_path / "a.safetensors", model=model, optimizer=opt, config={})
    second = save_training_state(tmp_path / "b.safetensors", model=model, optimizer=opt, config={})
    optimizer_path(second).replace(optimizer_path(first))  # as if a save died between files
    with pytest.raises(ValueError, match="does not belong"):
        load_training_state(first, model=model, optimizer=opt)


def test_resuming_an_ema_from_a_state_saved_without_one_is_refused(tmp_path):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    path = save_training_state(tmp_path / "s.safetensors", model=model, optimizer=opt, config={})
    with pytest.raises(ValueError, match="without an EMA"):
        load_training_state(path, model=model, optimizer=opt, ema=EMA(model))


def test_release_file_from_ema_loads_into_a_bare_model(tmp_path):
    model = tiny_model()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    ema = EMA(model, decay=0.9)
    train_steps(model, opt, ema, 4)
    path = save_checkpoint(tmp_path / "release.safetensors", ema.averaged_state_dict(model), CONFIG)
    tensors, _, _ = load_checkpoint(path)
    bare = tiny_model(seed=3)
    bare.load_state_dict(tensors)
    for name, p in bare.named_parameters():
        torch.testing.assert_close(p, ema.shadow[name])
