"""Checkpoints: one safetensors file per release, plus an optimizer file beside it to resume.

Release file (what `vidora generate` and the server load): ONE `.safetensors` file holding
the weights, with the resolved config and some meta (step, loss, data...) as JSON strings in
its header, so the weights never travel without the settings that built them. safetensors
cannot run code on load, unlike a pickle.

Training state (to resume): `<name>.safetensors` holds `model.*` and `ema.*` weights and the
same header; `<name>.optim.pt` beside it holds what is not a flat tensor dict (optimizer
moments, EMA counters, anything extra) through torch.save. Only the safetensors file is ever
published.

Every write goes to a temporary file in the same folder, is flushed to disk, then renamed over
the target (os.replace is atomic), so a crash mid-save leaves the previous checkpoint whole.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import Tensor, nn

from vidora.train.ema import EMA

FORMAT = "vidora-checkpoint-v1"
"""Written to every header; a file without it was not written by `save_checkpoint`."""


def _atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call write(tmp) for a temp file beside `path`, fsync it, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _flat_tensors(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached, contiguous CPU tensors; shared storage (tied weights) cloned, as safetensors
    refuses two names for one buffer."""
    out: dict[str, Tensor] = {}
    seen: set[tuple[int, int]] = set()
    for name, tensor in tensors.items():
        if not isinstance(tensor, Tensor):
            raise TypeError(f"checkpoint entry {name!r} is a {type(tensor).__name__}, not a Tensor")
        t = tensor.detach().to("cpu").contiguous()
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if t.numel() and key in seen:
            t = t.clone()
        seen.add((t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()))
        out[name] = t
    return out


def save_checkpoint(
    path: str | os.PathLike[str],
    tensors: Mapping[str, Tensor],
    config: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write `tensors` with `config` and `meta` (JSON-able dicts) into one safetensors file.

    JSON has no tuples: a tuple in the config comes back as a list.
    """
    path = Path(path)
    try:
        header = {
            "format": FORMAT,
            "config": json.dumps(dict(config), sort_keys=True),
            "meta": json.dumps(dict(meta or {}), sort_keys=True),
        }
    except TypeError as err:
        raise TypeError(f"config and meta must be JSON-serialisable dicts: {err}") from err
    flat = _flat_tensors(tensors)
    _atomic_write(path, lambda tmp: save_file(flat, tmp, metadata=header))
    return path


def _open_header(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(path, framework="pt") as f:
            header = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is not a readable safetensors checkpoint ({err})") from err
    if header.get("format") != FORMAT:
        raise ValueError(
            f"{path} is a safetensors file but not a Vidora checkpoint "
            f"(its header has no format={FORMAT!r}); write it with save_checkpoint"
        )
    return header


def load_checkpoint_info(path: str | os.PathLike[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(config, meta) from the header alone, without reading the weights."""
    header = _open_header(Path(path))
    return json.loads(header["config"]), json.loads(header["meta"])


def load_checkpoint(
    path: str | os.PathLike[str], device: torch.device | str = "cpu"
) -> tuple[dict[str, Tensor], dict[str, Any], dict[str, Any]]:
    """(tensors, config, meta) from a file written by `save_checkpoint`."""
    path = Path(path)
    header = _open_header(path)
    try:
        with safe_open(path, framework="pt", device=str(device)) as f:
            tensors = {name: f.get_tensor(name) for name in f.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path} is truncated or corrupt ({err})") from err
    return tensors, json.loads(header["config"]), json.loads(header["meta"])


def optimizer_path(path: str | os.PathLike[str]) -> Path:
    """`run/step_100.safetensors` -> `run/step_100.optim.pt`."""
    path = Path(path)
    return path.with_name(path.name.removesuffix(".safetensors") + ".optim.pt")


def save_training_state(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    config: Mapping[str, Any],
    meta: Mapping[str, Any] | None = None,
    ema: EMA | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save everything needed to resume: the pair `path` + `optimizer_path(path)`.

    Both files carry the same random token, and the optimizer file is written first; a crash
    between the two writes leaves a mismatched pair that `load_training_state` refuses.
    """
    path = Path(path)
    token = uuid.uuid4().hex
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    if ema is not None:
        tensors.update({f"ema.{k}": v for k, v in ema.shadow.items()})
    side = {
        "token": token,
        "optimizer": optimizer.state_dict(),
        "ema": None if ema is None else ema.counters(),
        "extra": dict(extra or {}),
    }
    _atomic_write(optimizer_path(path), lambda tmp: torch.save(side, tmp))
    return save_checkpoint(path, tensors, config, {**dict(meta or {}), "resume_token": token})


def load_training_state(
    path: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    ema: EMA | None = None,
    map_location: torch.device | str = "cpu",
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Load a `save_training_state` pair into model / optimizer / EMA in place.

    Returns (config, meta, extra). The optimizer file is only needed when an optimizer or an
    EMA is given, so a training state can also seed a fresh fine-tune.
    """
    tensors, config, meta = load_checkpoint(path, device=map_location)
    model_sd = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    if not model_sd:
        raise ValueError(f"{path} holds no model.* weights; was it saved by save_training_state?")
    model.load_state_dict(model_sd)
    if optimizer is None and ema is None:
        return config, meta, {}
    side_path = optimizer_path(path)
    if not side_path.is_file():
        raise FileNotFoundError(f"{side_path} is missing; it is needed to resume the optimizer")
    try:
        side = torch.load(side_path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for a damaged pickle/zip
        raise ValueError(f"{side_path} is truncated or corrupt ({err})") from err
    if side.get("token") != meta.get("resume_token"):
        raise ValueError(
            f"{side_path} does not belong to {path} (a save was interrupted between the two "
            "files); resume from an earlier checkpoint"
        )
    if optimizer is not None:
        optimizer.load_state_dict(side["optimizer"])
    if ema is not None:
        shadow = {k.removeprefix("ema."): v for k, v in tensors.items() if k.startswith("ema.")}
        if side["ema"] is None or not shadow:
            raise ValueError(f"{path} was saved without an EMA; pass ema=None to resume it")
        ema.load_state_dict({**side["ema"], "shadow": shadow})
    return config, meta, side["extra"]
