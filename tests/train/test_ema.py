"""The EMA follows its formula, survives a save/load, and never touches the live model unless
asked to."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from vidora.train import EMA


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3, 2)
        self.frozen = nn.Parameter(torch.ones(2), requires_grad=False)
        self.register_buffer("scale", torch.tensor(2.0))


def nudge(model: nn.Module, amount: float) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(amount)


def test_update_blends_by_the_decay():
    model = Tiny()
    before = model.proj.weight.detach().clone()
    ema = EMA(model, decay=0.9, warmup=False)
    nudge(model, 1.0)
    ema.update(model)
    torch.testing.assert_close(ema.shadow["proj.weight"], 0.9 * before + 0.1 * (before + 1.0))
    assert ema.num_updates == 1


def test_warmup_starts_fast_and_caps_at_the_decay():
    ema = EMA(Tiny(), decay=0.99, warmup=True)
    decays = []
    for _ in range(1000):
        decays.append(ema.current_decay())
        ema.num_updates += 1
    assert decays[0] == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert all(a <= b for a, b in zip(decays, decays[1:], strict=False))
    assert max(decays) == 0.99
    assert EMA(Tiny(), decay=0.99, warmup=False).current_decay() == 0.99


def test_shadow_converges_to_weights_that_stop_moving():
    model = Tiny()
    ema = EMA(model, decay=0.9, warmup=False)
    nudge(model, 3.0)
    for _ in range(300):
        ema.update(model)
    torch.testing.assert_close(ema.shadow["proj.bias"], model.proj.bias.detach())


def test_only_trainable_parameters_are_averaged():
    assert set(EMA(Tiny()).shadow) == {"proj.weight", "proj.bias"}


def test_averaged_state_dict_leaves_the_model_alone_and_keeps_buffers():
    model = Tiny()
    ema = EMA(model, decay=0.5, warmup=False)
    nudge(model, 1.0)
    ema.update(model)
    live = {k: v.clone() for k, v in model.state_dict().items()}
    averaged = ema.averaged_state_dict(model)
    assert averaged.keys() == live.keys()
    assert torch.equal(averaged["scale"], live["scale"])
    assert torch.equal(averaged["frozen"], live["frozen"])
    torch.testing.assert_close(averaged["proj.bias"], live["proj.bias"] - 0.5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, live[k])


def test_copy_to_writes_the_averages_into_the_model():
    model = Tiny()
    ema = EMA(model, decay=0.5, warmup=False)
    nudge(model, 1.0)
    ema.update(model)
    ema.copy_to(model)
    assert torch.equal(model.proj.weight, ema.shadow["proj.weight"])


def test_bf16_model_keeps_a_float32_shadow():
    model = Tiny().to(torch.bfloat16)
    ema = EMA(model, decay=0.9999, warmup=False)
    start = ema.shadow["proj.bias"].clone()
    nudge(model, 1.0)
    ema.update(model)
    assert ema.shadow["proj.bias"].dtype == torch.float32
    assert torch.all(ema.shadow["proj.bias"] != start)  # 1e-4 steps survive in float32
    assert ema.averaged_state_dict(model)["proj.bias"].dtype == torch.bfloat16


def test_state_dict_round_trip():
    model = Tiny()
    ema = EMA(model, decay=0.95)
    nudge(model, 0.3)
    ema.update(model)
    ema.update(model)
    other = EMA(Tiny(), decay=0.1, warmup=False)
    other.load_state_dict(ema.state_dict())
    assert other.counters() == ema.counters() == {"decay": 0.95, "warmup": True, "num_updates": 2}
    for name in ema.shadow:
        assert torch.equal(other.shadow[name], ema.shadow[name])


def test_mismatched_models_are_refused():
    ema = EMA(Tiny())
    with pytest.raises(KeyError, match="wrong module"):
        ema.update(nn.Linear(3, 2))
    with pytest.raises(KeyError, match="does not match"):
        ema.load_state_dict(EMA(nn.Linear(3, 2)).state_dict())
    with pytest.raises(ValueError, match="decay"):
        EMA(Tiny(), decay=1.0)


def test_wrapped_models_use_the_bare_names():
    model = Tiny()
    ema = EMA(nn.DataParallel(model), decay=0.5, warmup=False)
    assert set(ema.shadow) == {"proj.weight", "proj.bias"}
    nudge(model, 1.0)
    ema.update(nn.DataParallel(model))
    ema.copy_to(model)
    assert ema.num_updates == 1
