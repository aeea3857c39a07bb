"""`vidora world export`: Shapes World written as a dataset folder anyone can train on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from vidora.cli import app
from vidora.media import MANIFEST_NAME, VideoFolderDataset, read_manifest, read_mp4
from vidora.world.splits import get_clip

runner = CliRunner()


def plain(output: str) -> str:
    """The CLI's words without rich's box drawing and line wrapping."""
    return " ".join(output.replace("│", " ").split())


def test_export_writes_the_split_as_a_dataset_folder(tmp_path: Path):
    out = tmp_path / "world"
    result = runner.invoke(
        app, ["world", "export", "--split", "eval-seen", "-n", "3", "-o", str(out), "--seed", "5"]
    )
    assert result.exit_code == 0, result.output
    assert "wrote 3 eval-seen clips" in result.output
    entries = read_manifest(out)
    assert len(entries) == 3
    for index, entry in enumerate(entries):
        clip = get_clip("eval-seen", index, seed=5)
        assert entry.caption == clip.caption
        frames, fps = read_mp4(out / entry.path)
        expected = clip.frames()
        assert fps == 8.0 and frames.shape == expected.shape
        assert np.abs(frames.astype(int) - expected.astype(int)).mean() < 5
    dataset = VideoFolderDataset(out, num_frames=32)
    assert dataset.sizes_of_items == [get_clip("eval-seen", i, seed=5).scene.size for i in range(3)]


def test_export_refuses_an_unknown_split_without_a_traceback(tmp_path: Path):
    result = runner.invoke(
        app, ["world", "export", "--split", "test", "-n", "2", "-o", str(tmp_path / "x")]
    )
    assert result.exit_code == 2
    assert "unknown split 'test'" in plain(result.output)
    assert "eval-composition" in plain(result.output)
    assert "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_export_will_not_overwrite_a_dataset_unless_asked(tmp_path: Path):
    args = ["world", "export", "-n", "1", "-o", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    first = (tmp_path / MANIFEST_NAME).read_text()
    again = runner.invoke(app, args)
    assert again.exit_code == 2 and "already holds a dataset" in plain(again.output)
    assert runner.invoke(app, [*args, "--seed", "1", "--overwrite"]).exit_code == 0
    assert (tmp_path / MANIFEST_NAME).read_text() != first


def test_export_needs_a_positive_count(tmp_path: Path):
    result = runner.invoke(app, ["world", "export", "-n", "0", "-o", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
