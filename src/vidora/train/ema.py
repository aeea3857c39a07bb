"""An exponential moving average of a module's weights: samples from the averaged weights are
smoother than from the last step's (DiT, and most diffusion models since, release the EMA)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vidora.train.distributed import unwrap_model


class EMA:
    """shadow <- decay * shadow + (1 - decay) * weight, for each trainable parameter.

    The shadow is kept in float32 (on the parameter's device) even when the model trains in
    bf16, where a 0.9999 blend would round away. Buffers are not averaged; they come from the
    live model in `averaged_state_dict`. DDP / torch.compile wrappers are looked through, so
    names match the bare model's state_dict.
    """

    def __init__(self, module: nn.Module, decay: float = 0.9999, warmup: bool = True) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1); got {decay}")
        self.decay = decay
        self.warmup = warmup
        """Use min(decay, (1 + n) / (10 + n)) after n updates: early weights are random, and a
        fixed 0.9999 would keep them in the average for ~10k steps."""
        self.num_updates = 0
        self.shadow: dict[str, Tensor] = {
            name: p.detach().float().clone()
            for name, p in unwrap_model(module).named_parameters()
            if p.requires_grad
        }

    def current_decay(self) -> float:
        """The decay the next `update` will use."""
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    def _params(self, module: nn.Module) -> dict[str, nn.Parameter]:
        params = dict(unwrap_model(module).named_parameters())
        missing = self.shadow.keys() - params.keys()
        if missing:
            raise KeyError(f"module has no parameters named {sorted(missing)[:5]}; wrong module?")
        return {name: params[name] for name in self.shadow}

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Blend the module's current weights in; call after each optimizer step."""
        weight = 1.0 - self.current_decay()
        for name, p in self._params(module).items():
            self.shadow[name].lerp_(p.detach().to(self.shadow[name].dtype), weight)
        self.num_updates += 1

    @torch.no_grad()
    def copy_to(self, module: nn.Module) -> None:
        """Overwrite the module's parameters with the averages (e.g. before the final export)."""
        for name, p in self._params(module).items():
            p.copy_(self.shadow[name])

    def averaged_state_dict(self, module: nn.Module) -> dict[str, Tensor]:
        """The module's state_dict with averaged parameters, leaving the module untouched:
        what a release checkpoint saves mid-training."""
        state = dict(unwrap_model(module).state_dict())
        for name, avg in self.shadow.items():
            state[name] = avg.to(state[name].dtype)
        return state

    def counters(self) -> dict[str, Any]:
        """The non-tensor part of the state."""
        return {"decay": self.decay, "warmup": self.warmup, "num_updates": self.num_updates}

    def state_dict(self) -> dict[str, Any]:
        return {**self.counters(), "shadow": dict(self.shadow)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        shadow = state["shadow"]
        if shadow.keys() != self.shadow.keys():
            diff = sorted(shadow.keys() ^ self.shadow.keys())[:5]
            raise KeyError(f"EMA state does not match this model's parameters: {diff}")
        for name, value in shadow.items():
            self.shadow[name].copy_(value)
        self.decay = float(state["decay"])
        self.warmup = bool(state["warmup"])
        self.num_updates = int(state["num_updates"])
