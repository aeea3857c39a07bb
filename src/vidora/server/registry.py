"""The model registry: which models this server offers, their aliases, sizes and durations.

Configured by a small YAML file (``VIDORA_MODELS`` / ``--models``)::

    default: vidora-shapes-v22
    models:
      - id: vidora-shapes-v22
        engine: vidora.server.engine:builtin_engine   # "module:callable", called with options
        options: {}
        sizes: ["64x64", "96x64", "64x96"]
        seconds: [4, 8, 12]
    aliases:
      sora-2: vidora-shapes-v22

Without a file the server offers the built-in model, with `sora-2` and `sora-2-pro` mapped
to it so that applications written for the hosted API run unchanged.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from vidora.weights import BUILTIN_MODEL

if TYPE_CHECKING:
    from vidora.server.engine import Engine


@dataclass(frozen=True)
class ModelSpec:
    """One model the server offers."""

    id: str
    """The name clients send as `model` and the registry's key."""
    engine: str
    """`module:callable` that builds its Engine; imported only by workers."""
    sizes: tuple[str, ...]
    """Sizes it generates, WIDTHxHEIGHT; the first is the default."""
    seconds: tuple[int, ...]
    """Durations it generates; the first is the default."""
    options: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the engine factory (e.g. a checkpoint path)."""
    created: int = 0
    """Unix time shown by GET /v1/models."""
    owned_by: str = "vidora"

    def build_engine(self) -> Engine:
        """Import and call the factory; done lazily so API processes never import torch."""
        module_name, _, attr = self.engine.partition(":")
        if not module_name or not attr:
            raise ValueError(
                f"model {self.id}: engine must be 'module:callable', not {self.engine!r}"
            )
        factory = getattr(importlib.import_module(module_name), attr)
        return factory(**self.options)


@dataclass(frozen=True)
class Registry:
    """Models by id plus aliases; `resolve` turns what a client sent into a ModelSpec."""

    models: dict[str, ModelSpec]
    aliases: dict[str, str]
    default: str

    def __post_init__(self) -> None:
        if not self.models:
            raise ValueError("the model registry lists no model")
        if self.default not in self.models:
            raise ValueError(f"default model {self.default!r} is not one of {sorted(self.models)}")
        for alias, target in self.aliases.items():
            if target not in self.models:
                raise ValueError(f"alias {alias!r} points at unknown model {target!r}")
            if alias in self.models:
                raise ValueError(f"alias {alias!r} has the same name as a model")

    def resolve(self, name: str | None) -> ModelSpec | None:
        """The model for a client's `model` (an id or an alias); None if unknown."""
        if name is None:
            return self.models[self.default]
        return self.models.get(self.aliases.get(name, name))

    def names(self) -> list[str]:
        """Every name a client may send: ids first, then aliases."""
        return [*self.models, *self.aliases]

    @classmethod
    def builtin(cls) -> Registry:
        """The built-in model, with the hosted API's model names as aliases."""
        from vidora.world.spec import SIZES

        spec = ModelSpec(
            id=BUILTIN_MODEL,
            engine="vidora.server.engine:builtin_engine",
            sizes=tuple(SIZES),
            seconds=(4, 8, 12),
            created=1763683200,
        )
        return cls(
            models={spec.id: spec},
            aliases={"sora-2": BUILTIN_MODEL, "sora-2-pro": BUILTIN_MODEL},
            default=BUILTIN_MODEL,
        )

    @classmethod
    def from_yaml(cls, path: Path) -> Registry:
        """Parse a registry file, with errors that name the file and the entry to fix."""
        try:
            data = yaml.safe_load(Path(path).read_text())
        except (OSError, yaml.YAMLError) as error:
            raise ValueError(f"cannot read model registry {path}: {error}") from error
        if not isinstance(data, dict) or not isinstance(data.get("models"), list):
            raise ValueError(f"{path}: expected a mapping with a 'models' list")
        models: dict[str, ModelSpec] = {}
        for index, entry in enumerate(data["models"]):
            spec = _model_from_dict(entry, f"{path}: models[{index}]")
            models[spec.id] = spec
        aliases = data.get("aliases") or {}
        if not isinstance(aliases, dict):
            raise ValueError(f"{path}: 'aliases' must map names to model ids")
        default = data.get("default", next(iter(models), ""))
        try:
            return cls(
                models=models, aliases={str(k): str(v) for k, v in aliases.items()}, default=default
            )
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from error

    @classmethod
    def load(cls, path: Path | None) -> Registry:
        return cls.builtin() if path is None else cls.from_yaml(path)


def _model_from_dict(entry: Any, where: str) -> ModelSpec:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping")
    missing = [key for key in ("id", "engine", "sizes", "seconds") if key not in entry]
    if missing:
        raise ValueError(f"{where}: missing {', '.join(missing)}")
    sizes = tuple(str(s) for s in entry["sizes"])
    for size in sizes:
        width, _, height = size.partition("x")
        if not (width.isdigit() and height.isdigit()):
            raise ValueError(f"{where}: size {size!r} is not WIDTHxHEIGHT")
    seconds = tuple(int(s) for s in entry["seconds"])
    if not sizes or not seconds or min(seconds) <= 0:
        raise ValueError(f"{where}: needs at least one size and positive seconds")
    options = entry.get("options") or {}
    if not isinstance(options, dict):
        raise ValueError(f"{where}: options must be a mapping")
    return ModelSpec(
        id=str(entry["id"]),
        engine=str(entry["engine"]),
        sizes=sizes,
        seconds=seconds,
        options=options,
        created=int(entry.get("created", 0)),
        owned_by=str(entry.get("owned_by", "vidora")),
    )
