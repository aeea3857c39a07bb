"""Training batches: a stream that skips its first batches is the same stream, later."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from vidora.train.config import DataConfig
from vidora.train.data import Batch, batches

SKIP = 3


def _take(stream: Iterator[Batch], count: int) -> list[Batch]:
    return list(itertools.islice(stream, count))


def _assert_same(a: list[Batch], b: list[Batch]) -> None:
    assert [x.size for x in a] == [y.size for y in b]
    assert [x.captions for x in a] == [y.captions for y in b]
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.video, y.video)


@pytest.mark.parametrize("source", ["shapes", "folder"])
def test_skipping_batches_resumes_the_same_stream(
    source: str, noise_folder: Callable[[str, int], Path]
) -> None:
    data = DataConfig(
        source="shapes" if source == "shapes" else str(noise_folder("data", 4)),
        sizes=("64x64", "96x64") if source == "shapes" else ("64x64",),
        frames=(1, 5, 9),
        frame_weights=(1.0, 1.0, 1.0),
    )
    whole = _take(batches(data, batch_size=2), SKIP + 3)
    resumed = _take(batches(data, batch_size=2, skip=SKIP), 3)
    _assert_same(whole[SKIP:], resumed)
    # The stream is not constant, so the comparison above could have failed.
    assert any(not torch.equal(whole[0].video, later.video) for later in whole[1:])
