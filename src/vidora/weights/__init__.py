"""The built-in model's name and release file, in one place; importing this loads no torch."""

from pathlib import Path

BUILTIN_MODEL = "vidora-shapes-v22"
"""The model that ships with the package: its API id and its release file's name."""

BUILTIN_WEIGHTS = Path(__file__).resolve().parent / f"{BUILTIN_MODEL}.safetensors"
"""Its release file (VAE and DiT, float16, configs and default settings in the header)."""
