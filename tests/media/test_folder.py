"""Dataset folders of your own videos: the manifest format, and the loader that trains on it."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from vidora.media import (
    MANIFEST_NAME,
    ManifestError,
    MediaError,
    SkippedVideoWarning,
    VideoFolderDataset,
    nearest_size,
    read_manifest,
    write_dataset_folder,
    write_mp4,
)
from vidora.world.dataset import BucketBatchSampler


def index_clip(num_frames: int, width: int = 64, height: int = 64) -> np.ndarray:
    """Frame i is flat grey 8*i, so a decoded frame tells which source frame it was."""
    levels = (np.arange(num_frames) * 8).astype(np.uint8)
    return np.broadcast_to(levels[:, None, None, None], (num_frames, height, width, 3)).copy()


def item_indices(video: torch.Tensor) -> list[int]:
    """Source frame index of each frame of a (3, T, H, W) item in [-1, 1]."""
    grey = (video + 1) * 127.5
    return [round(float(grey[:, t].mean()) / 8) for t in range(video.shape[1])]


def write_folder(root: Path, clips: dict[str, tuple[np.ndarray, float]]) -> Path:
    """mp4s at their own rates and a manifest captioning each with its name."""
    root.mkdir(parents=True, exist_ok=True)
    with (root / MANIFEST_NAME).open("w") as manifest:
        for name, (frames, fps) in clips.items():
            write_mp4(root / name, frames, fps=fps)
            manifest.write(json.dumps({"path": name, "caption": f"clip {name}"}) + "\n")
    return root


# --- the folder format -----------------------------------------------------------------------


def test_write_then_read_a_dataset_folder(tmp_path: Path):
    items = [(index_clip(4), "ein roter Kreis, der nach links zieht"), (index_clip(2), "two")]
    assert write_dataset_folder(tmp_path / "data", iter(items)) == 2
    entries = read_manifest(tmp_path / "data")
    assert [e.caption for e in entries] == [caption for _, caption in items]
    assert [e.line for e in entries] == [1, 2]
    for entry in entries:
        assert (tmp_path / "data" / entry.path).is_file()
        assert not Path(entry.path).is_absolute()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [
        "000000.mp4",
        "000001.mp4",
        MANIFEST_NAME,
    ], "no partial manifest left behind"


def test_a_failed_write_leaves_no_manifest(tmp_path: Path):
    def items():
        yield index_clip(2), "fine"
        yield np.zeros((2, 63, 64, 3), np.uint8), "odd height"

    with pytest.raises(ValueError, match="even"):
        write_dataset_folder(tmp_path, items())
    assert not (tmp_path / MANIFEST_NAME).exists()
    with pytest.raises(ValueError, match="at least one clip"):
        write_dataset_folder(tmp_path / "none", [])
    assert not (tmp_path / "none" / MANIFEST_NAME).exists()


def test_an_existing_dataset_is_not_overwritten_by_accident(tmp_path: Path):
    write_dataset_folder(tmp_path, [(index_clip(2), "first")])
    with pytest.raises(ManifestError, match="already holds a dataset"):
        write_dataset_folder(tmp_path, [(index_clip(2), "second")])
    write_dataset_folder(tmp_path, [(index_clip(2), "second")], overwrite=True)
    assert [e.caption for e in read_manifest(tmp_path)] == ["second"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty, no clips listed"),
        ("\n   \n", "empty, no clips listed"),
        (
            '{"path": "a.mp4", "caption": "ok"}\n{"path": "b.mp4", caption}\n',
            "line 2: not valid JSON",
        ),
        ('["a.mp4", "caption"]\n', "line 1: expected a JSON object, got list"),
        ('{"path": "a.mp4"}\n', "line 1: missing 'caption'"),
        ('\n{"file": "a.mp4", "text": "x"}\n', "line 2: missing 'path' and 'caption'"),
        ('{"path": 3, "caption": "x"}\n', "line 1: 'path' must be a non-empty string"),
        ('{"path": "a.mp4", "caption": null}\n', "line 1: 'caption' must be a string"),
        ('{"path": "/data/a.mp4", "caption": "x"}\n', "line 1: 'path' must be relative"),
    ],
)
def test_bad_manifests_say_what_and_where(tmp_path: Path, content: str, message: str):
    (tmp_path / MANIFEST_NAME).write_text(content)
    with pytest.raises(ManifestError, match=message) as caught:
        read_manifest(tmp_path)
    assert MANIFEST_NAME in str(caught.value)


def test_missing_folder_or_manifest_explains_the_format(tmp_path: Path):
    with pytest.raises(ManifestError, match="no such folder"):
        read_manifest(tmp_path / "nowhere")
    with pytest.raises(ManifestError, match=f"no {MANIFEST_NAME} in this folder.*per line"):
        read_manifest(tmp_path)


# --- size buckets ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (64, 64, "64x64"),
        (1920, 1080, "96x64"),
        (1080, 1920, "64x96"),
        (120, 100, "64x64"),  # 1.2 is nearer 1 than 1.5 on a log scale
        (130, 100, "96x64"),
        (400, 100, "96x64"),  # far wider than any bucket: the widest
    ],
)
def test_nearest_size_by_aspect_ratio(width: int, height: int, expected: str):
    assert nearest_size(width, height) == expected


def test_nearest_size_with_custom_sizes_and_ties():
    assert nearest_size(100, 100, ["128x64", "64x128"]) == "128x64", "a tie goes to the first"
    assert nearest_size(100, 190, ["128x64", "64x128", "256x256"]) == "64x128"
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        nearest_size(10, 10, ["wide"])


# --- the loader ------------------------------------------------------------------------------


def test_items_are_training_tensors(tmp_path: Path):
    root = write_folder(tmp_path, {"a.mp4": (index_clip(32), 8)})
    dataset = VideoFolderDataset(root, num_frames=32)
    item = dataset[0]
    assert set(item) == {"video", "caption", "size"}
    assert item["video"].shape == (3, 32, 64, 64) and item["video"].dtype == torch.float32
    assert item["video"].min() >= -1 and item["video"].max() <= 1
    assert item["caption"] == "clip a.mp4" and item["size"] == "64x64"
    assert item_indices(item["video"]) == list(range(32))


def test_frame_rate_is_resampled_by_timestamp(tmp_path: Path):
    root = write_folder(
        tmp_path, {"fast.mp4": (index_clip(30), 24), "slow.mp4": (index_clip(3), 4)}
    )
    dataset = VideoFolderDataset(root, fps=8, num_frames=6)
    assert item_indices(dataset[0]["video"]) == [0, 3, 6, 9, 12, 15]  # 24 fps: every third
    assert item_indices(dataset[1]["video"]) == [0, 0, 1, 1, 2, 2]  # 4 fps: each twice


def test_short_clips_repeat_their_last_frame(tmp_path: Path):
    root = write_folder(tmp_path, {"short.mp4": (index_clip(12), 24)})  # 0.5 s: 4 frames at 8 fps
    video = VideoFolderDataset(root, fps=8, num_frames=7)[0]["video"]
    assert item_indices(video) == [0, 3, 6, 9, 9, 9, 9]


def test_clips_are_fitted_to_the_nearest_bucket(tmp_path: Path):
    wide = np.full((4, 72, 128, 3), 128, np.uint8)  # 16:9, blue bars at the far sides
    wide[:, :, :8] = wide[:, :, -8:] = (0, 0, 255)
    tall = index_clip(4, width=64, height=100)
    root = write_folder(
        tmp_path, {"wide.mp4": (wide, 8), "tall.mp4": (tall, 8), "sq.mp4": (index_clip(4), 8)}
    )
    dataset = VideoFolderDataset(root, num_frames=4)
    assert dataset.sizes_of_items == ["96x64", "64x96", "64x64"]
    assert [dataset.size_of(i) for i in range(3)] == dataset.sizes_of_items
    video = dataset[0]["video"]
    assert video.shape == (3, 4, 64, 96)
    blue = (video[2] > 0.5) & (video[0] < -0.5)
    assert not blue.any(), "a 16:9 clip into 3:2 loses its sides to the crop"
    assert dataset[1]["video"].shape == (3, 4, 96, 64)


def test_a_bucket_sampler_batches_one_size_at_a_time(tmp_path: Path):
    clips = {f"{i}.mp4": (index_clip(2, *(96, 64) if i % 2 else (64, 64)), 8) for i in range(5)}
    dataset = VideoFolderDataset(write_folder(tmp_path, clips), num_frames=2)
    batches = list(BucketBatchSampler(dataset, batch_size=2, shuffle=False))
    assert sorted(i for batch in batches for i in batch) == list(range(5))
    for batch in batches:
        videos = torch.stack([dataset[i]["video"] for i in batch])  # stacks: one size
        assert len({dataset[i]["size"] for i in batch}) == 1 and videos.ndim == 5


def test_a_broken_file_is_skipped_with_a_warning_naming_it(tmp_path: Path):
    root = write_folder(
        tmp_path, {"good1.mp4": (index_clip(4), 8), "good2.mp4": (index_clip(4), 8)}
    )
    (root / "broken.mp4").write_text("not a video")
    with (root / MANIFEST_NAME).open("a") as manifest:
        manifest.write(json.dumps({"path": "broken.mp4", "caption": "x"}) + "\n")
        manifest.write(json.dumps({"path": "missing.mp4", "caption": "y"}) + "\n")
    with pytest.warns(SkippedVideoWarning) as caught:
        dataset = VideoFolderDataset(root, num_frames=4)
    messages = " ".join(str(w.message) for w in caught)
    assert "broken.mp4" in messages and "missing.mp4" in messages
    assert len(dataset) == 2
    assert [dataset[i]["caption"] for i in range(2)] == ["clip good1.mp4", "clip good2.mp4"]
    assert dataset.captions == ["clip good1.mp4", "clip good2.mp4"], "items, not manifest lines"


def test_a_file_that_breaks_later_falls_back_to_another_of_its_size(tmp_path: Path):
    clips = {
        "a.mp4": (index_clip(4), 8),
        "wide.mp4": (index_clip(4, 96, 64), 8),
        "b.mp4": (index_clip(4), 8),
    }
    root = write_folder(tmp_path, clips)
    dataset = VideoFolderDataset(root, num_frames=4)
    (root / "a.mp4").write_bytes(b"\x00" * 64)  # damaged after the dataset was built
    with pytest.warns(SkippedVideoWarning, match="a.mp4"):
        item = dataset[0]
    assert item["caption"] == "clip b.mp4" and item["size"] == "64x64"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known broken now: no second warning
        assert dataset[0]["caption"] == "clip b.mp4"
    (root / "b.mp4").unlink()
    with pytest.warns(SkippedVideoWarning, match="b.mp4"), pytest.raises(MediaError, match="64x64"):
        dataset[0]
    assert dataset[1]["size"] == "96x64", "other sizes still load"


def test_a_folder_of_only_broken_files_is_an_error(tmp_path: Path):
    (tmp_path / "x.mp4").write_text("nope")
    (tmp_path / MANIFEST_NAME).write_text('{"path": "x.mp4", "caption": "x"}\n')
    with pytest.warns(SkippedVideoWarning), pytest.raises(ManifestError, match="none of the clips"):
        VideoFolderDataset(tmp_path)


def test_custom_sizes_and_bad_arguments(tmp_path: Path):
    root = write_folder(tmp_path, {"a.mp4": (index_clip(3, 96, 64), 8)})
    item = VideoFolderDataset(root, sizes=["32x32", "48x32"], num_frames=1)[0]
    assert item["size"] == "48x32" and item["video"].shape == (3, 1, 32, 48)
    with pytest.raises(ValueError, match="WIDTHxHEIGHT"):
        VideoFolderDataset(root, sizes=["big"])
    with pytest.raises(ValueError, match="num_frames"):
        VideoFolderDataset(root, num_frames=0)
    with pytest.raises(IndexError):
        VideoFolderDataset(root)[5]
