"""Fixtures of the training tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vidora.media.folder import write_dataset_folder
from vidora.world.spec import NUM_FRAMES


@pytest.fixture
def noise_folder(tmp_path: Path) -> Callable[[str, int], Path]:
    """Makes a dataset folder `tmp_path / name` of `count` random 64x64 clips ("clip 0", ...)."""

    def make(name: str, count: int) -> Path:
        rng = np.random.default_rng(0)
        items = [
            (rng.integers(0, 256, (NUM_FRAMES, 64, 64, 3), dtype=np.uint8), f"clip {i}")
            for i in range(count)
        ]
        write_dataset_folder(tmp_path / name, items)
        return tmp_path / name

    return make
