"""Media in and out: mp4 (PyAV), thumbnails and spritesheets (Pillow), images, and dataset
folders of your own videos. Arrays follow the project's convention: frames (T, H, W, 3)
uint8 RGB, one image (H, W, 3) uint8."""

from vidora.media.folder import (
    MANIFEST_NAME,
    ManifestEntry,
    ManifestError,
    SkippedVideoWarning,
    VideoFolderDataset,
    nearest_size,
    read_manifest,
    write_dataset_folder,
)
from vidora.media.images import fit_image, load_image, spritesheet_jpeg, thumbnail_webp
from vidora.media.video import (
    MediaError,
    VideoInfo,
    encode_mp4,
    probe_mp4,
    read_mp4,
    write_mp4,
)

__all__ = [
    "MANIFEST_NAME",
    "ManifestEntry",
    "ManifestError",
    "MediaError",
    "SkippedVideoWarning",
    "VideoFolderDataset",
    "VideoInfo",
    "encode_mp4",
    "fit_image",
    "load_image",
    "nearest_size",
    "probe_mp4",
    "read_manifest",
    "read_mp4",
    "spritesheet_jpeg",
    "thumbnail_webp",
    "write_dataset_folder",
    "write_mp4",
]
