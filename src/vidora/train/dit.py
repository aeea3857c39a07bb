"""Train the diffusion transformer: `vidora train dit [--config FILE] [key=value ...]`.

Flow matching on VAE latents of 4 s clips. The VAE and the text encoder are frozen. Clips are
encoded once into a latent cache (`run_dir/latents.safetensors`, built in chunks so an
interrupted build resumes), because encoding costs more than a DiT step on a CPU; Shapes World
captions are rewritten with fresh wording every time a clip is drawn. Some captions are dropped
(classifier-free guidance) and some clips have their first latent frames given clean (frame
conditioning: image-to-video and extension). Every `val_every` steps the EMA weights' flow loss
on held-out clips (fixed noise and times) is logged as `val_loss`: the curve that shows a long run
still learning; on Shapes World, with the word gaps that show it learning to follow each word of
a prompt. Resumes from `run_dir/last.safetensors`.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch.nn.parallel import DistributedDataParallel

from vidora.flow import flow_loss, interpolate, sample_timesteps, velocity_target
from vidora.models.dit import DIT_PRESETS, OPTIONAL_PARTS, DiT, DiTConfig
from vidora.models.text_encoder import load_text_encoder
from vidora.models.vae import VideoVAE, latent_frames
from vidora.pipelines.text_to_video import CONTEXT_FRAMES, EXTENSION_FRAMES, TextToVideoPipeline
from vidora.train.attributes import ATTRIBUTES, clip_labels
from vidora.train.checkpoint import load_training_state, save_training_state
from vidora.train.config import DataConfig, DiTTrainConfig, config_to_dict
from vidora.train.data import (
    FolderSource,
    ShapesSource,
    encode_clips,
    make_source,
    ordered_clips,
)
from vidora.train.distributed import cleanup_distributed, setup_distributed
from vidora.train.ema import EMA
from vidora.train.grounding import Grounding, Phrase, ground_phrases, grounding_loss, phrase_colours
from vidora.train.runtime import LossLog, autocast, learning_rate
from vidora.train.vae import load_release_part, load_vae
from vidora.train.validation import FlowValidation, WordGaps, validation_data
from vidora.world.captions import stand_in_words
from vidora.world.scene import Scene
from vidora.world.spec import NUM_FRAMES, SHAPES, parse_size
from vidora.world.splits import clip_frames

Progress = Callable[[int, int, dict], None]
T = TypeVar("T")

SAVE_EVERY_CLIPS = 512
"""Clips encoded between saves of a cache being built."""

ENCODE_BATCH = 8
"""Clips encoded together while a cache is built (more only pays on a GPU); worker processes
render `cache_workers` times as many at a time."""

CONTINUATION_STARTS = (EXTENSION_FRAMES, 2 * EXTENSION_FRAMES)
"""Frames of a scene's motion at which a continuation clip starts: where the pipeline's second
and third chunks start, 5 frames before the previous chunk ends (an 8 s video is two chunks, a
12 s one four; by the fourth a moving object has mostly left the frame)."""

EXTENSION_LATENTS = latent_frames(CONTEXT_FRAMES)
"""Latent frames an extension is given: the previous chunk's last 5 frames (2)."""


def continuation_start(key: int) -> int:
    """The frame clip `key`'s continuation starts at: `CONTINUATION_STARTS` in turn by key."""
    return CONTINUATION_STARTS[key % len(CONTINUATION_STARTS)]


# ---------------------------------------------------------------------------------------
# The latent cache
# ---------------------------------------------------------------------------------------


class LatentCache:
    """Normalised VAE latents of training clips, per size, with the key of each clip.

    A Shapes World clip's key is its index in the split (its scene, and so fresh captions, come
    back from `get_clip`); a dataset-folder clip's key is its item index (its caption is fixed).
    """

    def __init__(
        self, latents: dict[str, torch.Tensor], keys: dict[str, list[int]], data: DataConfig
    ):
        self.latents, self.keys, self.data = latents, keys, data
        self.shape_cells: dict[str, torch.Tensor] | None = None
        """Per size, (N, 1, F, h, w): how far each latent cell moves when the clip's objects
        are drawn as other shapes (`add_shape_cells`); None until added."""
        self.labels: dict[str, torch.Tensor] | None = None
        """Per size, (N, A, F, rows, columns) int8: each DiT token's object attributes
        (`add_object_labels`); None until added."""

    @classmethod
    def load(cls, path: Path, data: DataConfig) -> LatentCache:
        """A run's saved cache as it is, at the sizes it holds (`data`: the run's data settings,
        whose sizes are replaced by those), for probing a model on the clips it trained on."""
        stored = load_file(path)
        sizes = [k.removeprefix("latents.") for k in stored if k.startswith("latents.")]
        if not sizes:
            raise ValueError(f"{path} holds no latents: it is not a DiT run's latent cache")
        data = replace(data, sizes=tuple(sizes))
        latents = {s: stored[f"latents.{s}"] for s in sizes}
        return cls(latents, {s: stored[f"keys.{s}"].tolist() for s in sizes}, data)

    @classmethod
    def build(
        cls,
        path: Path,
        vae: VideoVAE,
        data: DataConfig,
        clips: int,
        progress: Progress | None = None,
        workers: int = 0,
        continuation: bool = False,
    ) -> LatentCache:
        """Encode `clips` clips (spread over the sizes), resuming a partial cache at `path`;
        `workers` processes render Shapes World clips (0: this process). `continuation`: each
        Shapes World clip's motion carried on past its 32 frames instead, from
        `continuation_start(key)` (what an extension continues; its objects may leave the frame).
        """
        if continuation and data.source != "shapes":
            raise ValueError("continuation clips carry Shapes World scenes on (data.source=shapes)")
        latents: dict[str, list[torch.Tensor]] = {s: [] for s in data.sizes}
        keys: dict[str, list[int]] = {s: [] for s in data.sizes}
        if path.exists():
            stored = load_file(path)
            for size in data.sizes:
                if f"latents.{size}" in stored:
                    latents[size] = list(stored[f"latents.{size}"].unbind(0))
                    keys[size] = stored[f"keys.{size}"].tolist()
        source = make_source(data)
        sizes = list(getattr(source, "by_size", data.sizes))
        per_size = clips // len(sizes)
        total = per_size * len(sizes)
        saved = sum(len(k) for k in keys.values())
        render_here = workers == 0 or not isinstance(source, ShapesSource)
        with _render_pool(0 if render_here else workers) as pool:
            block = ENCODE_BATCH * (1 if pool is None else workers)  # clips rendered together
            while any(len(keys[s]) < per_size for s in sizes):
                for size in sizes:
                    if len(keys[size]) >= per_size:
                        continue
                    count = min(block, per_size - len(keys[size]))
                    frames, batch_keys = _next_clips(
                        source, size, keys[size], count, pool, continuation
                    )
                    for i in range(0, count, ENCODE_BATCH):
                        chunk = encode_clips(vae, frames[i : i + ENCODE_BATCH])
                        latents[size].extend(chunk.half().cpu().unbind(0))  # (z, F, h, w) each
                    keys[size].extend(batch_keys)
                done = sum(len(k) for k in keys.values())
                if done - saved >= SAVE_EVERY_CLIPS:  # each save rewrites the whole file
                    _save_cache(path, latents, keys)
                    saved = done
                if progress:
                    stage = "continuation cache" if continuation else "latent cache"
                    progress(done, total, {"stage": stage})
        if sum(len(k) for k in keys.values()) != saved:
            _save_cache(path, latents, keys)
        stacked = {s: torch.stack(latents[s][:per_size]) for s in sizes}
        return cls(stacked, {s: keys[s][:per_size] for s in sizes}, data)


def _next_clips(
    source: ShapesSource | FolderSource,
    size: str,
    done: list[int],
    count: int,
    pool: ProcessPoolExecutor | None,
    continuation: bool = False,
) -> tuple[list[np.ndarray], list[int]]:
    """The next `count` clips of `size` after the keys in `done`: their frames (rendered by
    `pool`'s processes when given: Shapes World only) and keys; with `continuation`, Shapes
    World clips carried on from `continuation_start(key)`."""
    by_key = continuation or pool is not None
    frames, _, keys = ordered_clips(source, size, done, count, render=not by_key)
    if by_key:
        starts = [continuation_start(k) for k in keys] if continuation else None
        frames = _render_clips(source.split, keys, source.seed, source.num_frames, pool, starts)
    return frames, keys


def _render_pool(workers: int) -> AbstractContextManager[ProcessPoolExecutor | None]:
    """`workers` processes to render Shapes World clips in (spawned: safe after CUDA has
    started), or None for 0: render in this one."""
    if workers == 0:
        return nullcontext()
    return ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"))


def _render_clips(
    split: str,
    keys: list[int],
    seed: int,
    num_frames: int,
    pool: ProcessPoolExecutor | None,
    starts: list[int] | None = None,
    swap_shapes: bool = False,
) -> list[np.ndarray]:
    """Shapes World clips' frames by key (`clip_frames`, from each of `starts` when given), in
    `pool`'s processes when given."""
    n = len(keys)
    starts = starts or [0] * n
    args = [split] * n, keys, [seed] * n, [num_frames] * n, [swap_shapes] * n, starts
    if pool is None:
        return list(map(clip_frames, *args))
    return list(pool.map(clip_frames, *args, chunksize=ENCODE_BATCH))


def _save_cache(
    path: Path, latents: dict[str, list[torch.Tensor]], keys: dict[str, list[int]]
) -> None:
    tensors = {}
    for size, items in latents.items():
        if items:
            tensors[f"latents.{size}"] = torch.stack(items)
            tensors[f"keys.{size}"] = torch.tensor(keys[size])
    tmp = path.with_suffix(".tmp")
    save_file(tensors, tmp)
    tmp.replace(path)  # atomic: an interrupted save leaves the previous cache whole


SHAPE_DISTANCE_FULL = 2.0
"""A cell's distance from its shape-swapped twin (normalised latent, over channels) from which
it gets the whole `shape_weight`. On 32 clips of the built-in VAE, the median cell moved 0.03,
the 90th percentile 1.0, the 98th 2.8; 83% of the cells that moved over 0.5 were foreground."""


def add_shape_cells(
    cache: LatentCache,
    vae: VideoVAE,
    path: Path,
    progress: Progress | None = None,
    workers: int = 0,
) -> None:
    """Give a Shapes World cache its shape cells: each clip rendered again as its
    `shape_swapped` twin (in `workers` processes; 0: this one) and encoded, and the distance of
    every latent cell from the twin's.

    These are the cells where a circle and a square differ (corners, a triangle's slopes), a
    few percent of a clip: the plain flow loss hardly sees them, so the DiT rounds squares off.
    Read from `path` when it holds this cache's clips, else built and saved there.
    """
    if cache.data.source != "shapes":
        raise ValueError("shape cells need Shapes World clips (data.source=shapes)")
    if path.exists():
        stored = load_file(path)
        if all(
            f"keys.{s}" in stored and stored[f"keys.{s}"].tolist() == cache.keys[s]
            for s in cache.latents
        ):
            cache.shape_cells = {s: stored[f"cells.{s}"] for s in cache.latents}
            return
    split, seed = cache.data.split, cache.data.seed
    cells: dict[str, torch.Tensor] = {}
    total, done = sum(len(k) for k in cache.keys.values()), 0
    with _render_pool(workers) as pool:
        block = ENCODE_BATCH * max(workers, 1)  # clips rendered together
        for size, latents in cache.latents.items():
            parts = []
            for start in range(0, len(latents), block):
                keys = cache.keys[size][start : start + block]
                n = len(keys)
                twins = _render_clips(split, keys, seed, NUM_FRAMES, pool, swap_shapes=True)
                for i in range(0, n, ENCODE_BATCH):
                    twin = encode_clips(vae, twins[i : i + ENCODE_BATCH]).cpu()  # (b, z, F, h, w)
                    clips = latents[start + i : start + i + ENCODE_BATCH].float()
                    parts.append((clips - twin).norm(dim=1, keepdim=True).half())  # (b, 1, F, h, w)
                done += n
                if progress:
                    progress(done, total, {"stage": "shape cells"})
            cells[size] = torch.cat(parts)
    tensors = {f"cells.{s}": c for s, c in cells.items()}
    tensors.update({f"keys.{s}": torch.tensor(cache.keys[s]) for s in cells})
    save_file(tensors, path)
    cache.shape_cells = cells


def add_object_labels(cache: LatentCache, patch: tuple[int, int], continuation: bool) -> None:
    """Give a Shapes World cache its clips' per-token object labels (`clip_labels`), for DiT
    tokens of `patch` (rows, columns) latent cells; `continuation`: the cache holds clips carried
    on from `continuation_start(key)`. Computed, not stored: under a millisecond a clip."""
    if cache.data.source != "shapes":
        raise ValueError("object labels need Shapes World clips (data.source=shapes)")
    labels = {}
    for size, latents in cache.latents.items():
        keys = cache.keys[size]
        _, height = parse_size(size)
        token_px = height // (latents.shape[-2] // patch[0])
        starts = [continuation_start(k) for k in keys] if continuation else None
        labels[size] = clip_labels(cache.data.split, cache.data.seed, keys, token_px, starts)
    cache.labels = labels


@dataclass(frozen=True)
class Draw:
    """One training batch of one size drawn from the latent caches."""

    latents: torch.Tensor
    """(B, z, F, h, w) normalised clean latents."""
    captions: list[str]
    size: str
    extends: torch.Tensor
    """(B,) bool: continuation clips, trained as extensions (their first latent frames given)."""
    shape_cells: torch.Tensor | None = None
    """(B, 1, F, h, w) shape cells (`LatentCache.shape_cells`; zero on continuation clips), when
    asked for."""
    wrong_captions: list[str] | None = None
    """Each caption with one object's shape named wrongly, when asked for."""
    labels: torch.Tensor | None = None
    """(B, A, F, rows, columns) each token's object attributes (`LatentCache.labels`, -1 where
    no object), when asked for."""
    phrases: list[tuple[Phrase, ...]] | None = None
    """Each Shapes World caption's object phrases (`vidora.train.grounding`), in the scene's
    object order."""


class CaptionedLatents:
    """Draws batches of one size from a `LatentCache`, with fresh captions."""

    def __init__(
        self,
        cache: LatentCache,
        seed: int,
        rank: int = 0,
        unknown_background: float = 0.0,
        stand_ins: tuple[str, ...] = (),
        continuations: LatentCache | None = None,
        continuation_share: float = 0.0,
    ):
        """`unknown_background`: the share of captions whose background word is one of
        `stand_ins` (`DiTTrainConfig.unknown_background`). `continuation_share`: the share of
        clips drawn from `continuations` (`DiTTrainConfig.continuation_share`)."""
        if unknown_background and not stand_ins:
            raise ValueError("unknown_background needs stand-in words")
        if continuation_share and continuations is None:
            raise ValueError("continuation_share needs a cache of continuation clips")
        self.cache, self.continuations = cache, continuations
        self.unknown_background, self.stand_ins = unknown_background, stand_ins
        self.continuation_share = continuation_share
        self.sizes = list(cache.latents)
        if cache.data.source != "shapes":
            # Item indices of the dataset (broken files already skipped), not manifest lines.
            self.folder_captions = make_source(cache.data).dataset.captions
        self.rng = np.random.default_rng([seed, rank, 7])
        self.bucket_rng = np.random.default_rng([seed, 8])  # shared by ranks: same bucket each step
        self.continuation_rng = np.random.default_rng([seed, rank, 9])
        self.scenes: dict[int, Scene] = {}  # key -> scene, built once (rebuilding one: ~0.3 ms)

    def draw(
        self,
        batch_size: int,
        shape_cells: bool = False,
        wrong_shapes: bool = False,
        labels: bool = False,
    ) -> Draw:
        """A batch of one size: its clips' shape cells with `shape_cells`, with `wrong_shapes`
        each caption again with one object's shape named wrongly (the same template and words:
        both captions are written from one word seed), and with `labels` its tokens' object
        labels. The same seed gives the same clips and captions whatever is asked for
        alongside."""
        if shape_cells and self.cache.shape_cells is None:
            raise ValueError("the latent cache has no shape cells: see add_shape_cells")
        carried = self.continuations
        if labels and (
            self.cache.labels is None or (carried is not None and carried.labels is None)
        ):
            raise ValueError("the latent caches have no object labels: see add_object_labels")
        size = self.sizes[self.bucket_rng.integers(len(self.sizes))]
        rows = torch.from_numpy(self.rng.integers(len(self.cache.latents[size]), size=batch_size))
        latents = self.cache.latents[size][rows].float()  # (B, z, F, h, w)
        keys = [int(self.cache.keys[size][r]) for r in rows]
        extends = torch.zeros(batch_size, dtype=torch.bool)
        tokens = self.cache.labels[size][rows].long() if labels else None  # (B, A, F, r, c)
        if self.continuations is not None and self.continuation_share:
            extends = torch.from_numpy(
                self.continuation_rng.random(batch_size) < self.continuation_share
            )
            picked = torch.from_numpy(
                self.continuation_rng.integers(
                    len(self.continuations.latents[size]), size=batch_size
                )
            )[extends]
            latents[extends] = self.continuations.latents[size][picked].float()
            if tokens is not None:
                tokens[extends] = self.continuations.labels[size][picked].long()
            for i, row in zip(
                torch.nonzero(extends).flatten().tolist(), picked.tolist(), strict=True
            ):
                keys[i] = int(self.continuations.keys[size][row])
        cells = None
        if shape_cells:
            cells = self.cache.shape_cells[size][rows].float()  # (B, 1, F, h, w)
            cells[extends] = 0.0  # a continuation's twin is not rendered: no extra weight
        phrases = None
        if wrong_shapes:
            captions, wrong = self._captions_and_wrong_shapes(keys)
        else:
            (captions, phrases), wrong = self._captions(keys), None
        return Draw(latents, captions, size, extends, cells, wrong, tokens, phrases)

    def _captions(self, keys: list[int]) -> tuple[list[str], list[tuple[Phrase, ...]] | None]:
        """Each clip's caption: a dataset folder's own, or a Shapes World caption freshly worded
        (with a stand-in background word for a share `unknown_background`) and its objects'
        phrases."""
        from vidora.world.captions import write_caption_with_spans

        if self.cache.data.source != "shapes":
            return [self.folder_captions[key] for key in keys], None
        wording = self._wording()
        captions, phrases = [], []
        for scene in self._scenes(keys):
            stand_in = None
            if self.unknown_background and self.rng.random() < self.unknown_background:
                stand_in = self.stand_ins[self.rng.integers(len(self.stand_ins))]
            caption, spans = write_caption_with_spans(
                scene, self.rng, wording, background_word=stand_in
            )
            captions.append(caption)
            phrases.append(phrase_colours([o.colour for o in scene.objects], spans))
        return captions, phrases

    def _captions_and_wrong_shapes(self, keys: list[int]) -> tuple[list[str], list[str]]:
        from vidora.world.captions import write_caption

        wording = self._wording()
        captions, wrong = [], []
        for scene in self._scenes(keys):
            k = int(self.rng.integers(len(scene.objects)))
            obj = scene.objects[k]
            other = str(self.rng.choice([s for s in SHAPES if s != obj.shape]))
            objects = list(scene.objects)
            objects[k] = replace(obj, shape=other)
            words = int(self.rng.integers(2**63))
            captions.append(write_caption(scene, np.random.default_rng(words), wording))
            wrong_scene = replace(scene, objects=tuple(objects))
            wrong.append(write_caption(wrong_scene, np.random.default_rng(words), wording))
        return captions, wrong

    def _wording(self) -> str:
        return "heldout" if self.cache.data.split == "eval-wording" else "train"

    def _scenes(self, keys: list[int]) -> list[Scene]:
        from vidora.world.splits import get_clip

        data = self.cache.data
        for key in keys:
            if key not in self.scenes:
                self.scenes[key] = get_clip(data.split, key, data.seed).scene
        return [self.scenes[key] for key in keys]


# ---------------------------------------------------------------------------------------
# One training step
# ---------------------------------------------------------------------------------------


def conditioning_mask(
    batch: int, frames: int, prob: float, generator: torch.Generator
) -> torch.Tensor:
    """(B, F) bool: for a share `prob` of clips, the first 1 or 2 latent frames are given clean.

    One frame is a first image (image-to-video); two are the last 5 frames of a previous clip
    (extension).
    """
    mask = torch.zeros(batch, frames, dtype=torch.bool)
    chosen = torch.rand(batch, generator=generator) < prob
    count = torch.randint(1, 3, (batch,), generator=generator)
    for i in torch.nonzero(chosen).flatten().tolist():
        mask[i, : count[i]] = True
    return mask


FOREGROUND_DISTANCE = 1.0
"""Distance of a normalised latent from its frame's median latent from which it counts as
foreground. On six Shapes World clips in the built-in VAE's latents, the cells under an object lay
mostly further (their 10th percentile 0.8 to 2.6) and the canvas cells mostly nearer (their median
0.2 to 0.6); the canvas cells beside an object, which its edge reaches, count as foreground."""


def latent_foreground(latents: torch.Tensor) -> torch.Tensor:
    """(B, z, F, h, w) -> (B, 1, F, h, w) bool: positions far from their frame's median latent.

    The median over a frame's positions is its background when objects cover less than half of
    it, as in Shapes World; on other videos the mask only moves weight between positions.
    """
    median = latents.flatten(3).median(dim=3).values[..., None, None]  # (B, z, F, 1, 1)
    return (latents - median).norm(dim=1, keepdim=True) > FOREGROUND_DISTANCE


def jitter_text(
    text: torch.Tensor, text_mask: torch.Tensor, std: float, generator: torch.Generator
) -> torch.Tensor:
    """Token states (B, L, D) with Gaussian noise of `std` on the real tokens (padding is never
    attended to, so it stays as it was); the noise is drawn from the CPU `generator`."""
    noise = torch.randn(text.shape, generator=generator).to(text.device)  # (B, L, D)
    return text + std * noise * text_mask[..., None]


def drop_tokens(text_mask: torch.Tensor, share: float, generator: torch.Generator) -> torch.Tensor:
    """The mask (B, L) with each real token but the first hidden with probability `share`, so
    no caption is left with nothing to attend to."""
    keep = torch.rand(text_mask.shape, generator=generator) >= share  # (B, L)
    keep[:, 0] = True
    return text_mask & keep.to(text_mask.device)


@dataclass(frozen=True)
class WrongText:
    """Token states of the batch's captions with a wrong shape word, for `shape_contrast`."""

    text: torch.Tensor
    """(B, L', D) token states."""
    mask: torch.Tensor
    """(B, L') bool: real tokens."""
    used: torch.Tensor
    """(B,) bool: clips whose true caption was kept (a dropped caption has no shape to swap)."""


def dit_loss(
    model: torch.nn.Module,
    latents: torch.Tensor,
    text: torch.Tensor,
    text_mask: torch.Tensor,
    cfg: DiTTrainConfig,
    generator: torch.Generator,
    noise_generator: torch.Generator | None = None,
    wrong: WrongText | None = None,
    shape_cells: torch.Tensor | None = None,
    extends: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    stats: dict[str, float] | None = None,
    grounding: Grounding | None = None,
) -> torch.Tensor:
    """Flow-matching loss on a batch of clean latents (B, z, F, h, w), the positions weighted by
    `cfg.foreground_weight` where they hold an object and by `cfg.shape_weight` by their
    `shape_cells` (B, 1, F, h, w), and clean given frames left out; with
    `wrong`, plus `cfg.shape_contrast` times the hinge on each clip's relative loss rise under
    its wrong-shape caption. Clips marked in `extends` (B,) bool are continuations: given their
    first `EXTENSION_LATENTS` latent frames, as the pipeline's extension is. With `labels`
    (B, A, F, rows, columns), each token's object attributes, plus `cfg.attribute_weight` times
    the attribute head's cross-entropy on them (`attribute_loss`); `stats`, when given, gets
    each attribute's cross-entropy for the log. With `grounding` and `labels`, plus
    `cfg.grounding_weight` times the grounding loss (`grounding_loss`, logged as `ground`).

    Timesteps and conditioning come from the CPU `generator`; the noise from `noise_generator`
    (default: that one), which on a GPU lives there so the noise is drawn where it is used.
    """
    device = next(model.parameters()).device
    latents = latents.to(device)
    b, _, f = latents.shape[:3]
    noise_generator = noise_generator or generator
    noise = torch.randn(latents.shape, generator=noise_generator, device=noise_generator.device)
    noise = noise.to(device)
    t = sample_timesteps(b, generator, shift=cfg.timestep_shift).to(device)  # (B,)
    cond = conditioning_mask(b, f, cfg.cond_prob, generator).to(device)  # (B, F)
    if extends is not None:
        extension = torch.arange(f, device=device) < EXTENSION_LATENTS  # (F,)
        cond = torch.where(extends.to(device)[:, None], extension, cond)
    given = cond[:, None, :, None, None]  # (B, 1, F, 1, 1)
    x_t = torch.where(given, latents, interpolate(latents, noise, t))  # clean where given
    forward = model
    if cfg.mean_dropout:  # the prompt's mean left out of these clips' condition
        keep = torch.rand(b, generator=generator) >= cfg.mean_dropout  # (B,)
        forward = functools.partial(model, keep_mean=keep.to(device))
    logits = maps = None
    if wrong is None and labels is not None and cfg.attribute_weight:
        velocity, logits = forward(x_t, t, text, text_mask, cond, attributes=True)
    elif wrong is None and labels is not None and grounding is not None and cfg.grounding_weight:
        velocity, maps = forward(x_t, t, text, text_mask, cond, cross_maps=True)
    elif wrong is None:
        velocity = forward(x_t, t, text, text_mask, cond)
    elif cfg.shape_contrast_wrong_grad:  # both captions in one pass of 2B clips (one forward
        # with gradient before each backward, as DDP asks)
        texts, masks = _pad_tokens(
            [text, wrong.text.to(device)], [text_mask, wrong.mask.to(device)]
        )
        both = forward(x_t.repeat(2, 1, 1, 1, 1), t.repeat(2), texts, masks, cond.repeat(2, 1))
        velocity, wrong_velocity = both.chunk(2)  # (B, z, F, h, w) each
    else:  # the wrong caption only measured: no graph, no backward through it
        velocity = forward(x_t, t, text, text_mask, cond)
        with torch.no_grad():
            wrong_velocity = forward(x_t, t, wrong.text.to(device), wrong.mask.to(device), cond)
    weight = (~given).float()  # (B, 1, F, 1, 1)
    if cfg.foreground_weight:
        weight = weight * (1.0 + cfg.foreground_weight * latent_foreground(latents).float())
    if shape_cells is not None and cfg.shape_weight:
        share = (shape_cells.to(device) / SHAPE_DISTANCE_FULL).clamp(max=1.0)  # (B, 1, F, h, w)
        weight = weight * (1.0 + cfg.shape_weight * share)
    loss = flow_loss(velocity.float(), latents, noise, weight)
    if logits is not None:
        labels = labels.to(device).masked_fill(given, -1)  # given frames show their objects
        loss = loss + cfg.attribute_weight * attribute_loss(logits, labels, stats)
    if maps is not None:
        ground = grounding_loss(maps, grounding, labels.to(device))
        if stats is not None:
            stats["ground"] = ground.item()
        loss = loss + cfg.grounding_weight * ground
    if wrong is None or not wrong.used.any():
        return loss
    target = velocity_target(latents, noise).float()
    true_loss = _clip_losses(velocity, target, weight)  # (B,)
    wrong_loss = _clip_losses(wrong_velocity, target, weight)  # (B,)
    # The rise in units of the batch's mean loss (a per-clip ratio would blow up on the clips
    # near the data, whose loss is tiny), charged on the noisier clips alone: near the data the
    # clip already shows its shape, and the DiT should keep drawing it whatever the caption says.
    rise = (wrong_loss - true_loss) / true_loss.mean().detach().clamp_min(1e-8)  # (B,)
    charged = wrong.used.to(device) & (t <= cfg.shape_contrast_max_t)  # (B,)
    hinge = torch.relu(cfg.shape_contrast_margin - rise) * charged  # (B,)
    return loss + cfg.shape_contrast * hinge.mean()


def attribute_loss(
    logits: torch.Tensor, labels: torch.Tensor, stats: dict[str, float] | None = None
) -> torch.Tensor:
    """Mean over `ATTRIBUTES` of the head's cross-entropy on the labelled tokens: logits
    (B, N, classes) in `DiT.patchify`'s token order, labels (B, A, F, rows, columns) with -1
    where no object lies (left out; zero when no token is labelled)."""
    targets = labels.flatten(2)  # (B, A, N), the tokens in (frame, row, column) order
    if targets.shape[2] != logits.shape[1]:
        raise ValueError(f"{targets.shape[2]} token labels for {logits.shape[1]} tokens")
    losses, start = [], 0
    for a, (name, values) in enumerate(ATTRIBUTES.items()):
        part = logits[..., start : start + len(values)].float()  # (B, N, classes)
        start += len(values)
        target = targets[:, a]  # (B, N)
        if not (target >= 0).any():
            losses.append(part.sum() * 0.0)  # keeps the graph whole for DDP
            continue
        losses.append(F.cross_entropy(part.flatten(0, 1), target.flatten(), ignore_index=-1))
        if stats is not None:
            stats[f"ce_{name}"] = losses[-1].item()
    return torch.stack(losses).mean()


def _pad_tokens(
    texts: list[torch.Tensor], masks: list[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token states (B, L_i, D) and masks (B, L_i) of several batches, padded to the longest
    (padding is masked out, so attention never sees it) and stacked: (sum B, L, D), (sum B, L)."""
    length = max(t.shape[1] for t in texts)
    padded = [F.pad(t, (0, 0, 0, length - t.shape[1])) for t in texts]
    padded_masks = [F.pad(m, (0, length - m.shape[1])) for m in masks]
    return torch.cat(padded), torch.cat(padded_masks)


def _clip_losses(
    velocity: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Each clip's weighted mean squared velocity error, (B,)."""
    sq = (velocity.float() - target).square() * weight  # (B, z, F, h, w)
    total = weight.expand_as(sq).flatten(1).sum(1)  # (B,)
    return sq.flatten(1).sum(1) / total.clamp_min(1e-8)


def _param_groups(dit: DiT, part_lr_scale: float) -> list[dict]:
    """The optimizer's groups of trained weights, each with its learning-rate multiplier: one
    group unless the optional parts are scaled (so runs saved with one group resume)."""
    trained = [(name, p) for name, p in dit.named_parameters() if p.requires_grad]
    if part_lr_scale == 1.0:
        return [{"params": [p for _, p in trained], "lr_scale": 1.0}]
    parts = [p for name, p in trained if name.startswith(OPTIONAL_PARTS)]
    rest = [p for name, p in trained if not name.startswith(OPTIONAL_PARTS)]
    groups = [{"params": rest, "lr_scale": 1.0}, {"params": parts, "lr_scale": part_lr_scale}]
    return [group for group in groups if group["params"]]


def check_config(cfg: DiTTrainConfig) -> None:
    """Raise ValueError, saying what to set, for settings that cannot go together; the CLI
    calls it before any work starts."""
    if cfg.train_part not in ("all", "refine"):
        raise ValueError(f"train_part must be 'all' or 'refine', not {cfg.train_part!r}")
    if cfg.train_part == "refine" and not (cfg.refine_width and cfg.init_from):
        raise ValueError(
            "train_part=refine trains the convolutional head of a trained DiT: it needs "
            "refine_width > 0 and init_from"
        )
    if cfg.part_lr_scale < 0:
        raise ValueError(
            f"part_lr_scale multiplies the learning rate: 0 or more, not {cfg.part_lr_scale}"
        )
    if not 0.0 <= cfg.unknown_background <= 1.0:
        raise ValueError(f"unknown_background is a share, 0 to 1, not {cfg.unknown_background}")
    if cfg.unknown_background and (cfg.data.source != "shapes" or cfg.shape_contrast):
        raise ValueError(
            "unknown_background rewrites Shapes World captions (data.source=shapes), "
            "and not together with shape_contrast"
        )
    if cfg.shape_contrast and cfg.data.source != "shapes":
        raise ValueError(
            "shape_contrast needs Shapes World (data.source=shapes): it rewrites "
            "captions from their scenes"
        )
    if not 0.0 <= cfg.continuation_share <= 1.0:
        raise ValueError(f"continuation_share is a share, 0 to 1, not {cfg.continuation_share}")
    if cfg.continuation_share and cfg.data.source != "shapes":
        raise ValueError(
            "continuation_share carries Shapes World scenes on past their clips "
            "(data.source=shapes); a dataset folder's videos have no more frames to give"
        )
    if cfg.shape_weight < 0:
        raise ValueError(f"shape_weight is an extra loss weight, 0 or more, not {cfg.shape_weight}")
    if cfg.attribute_weight < 0:
        raise ValueError(
            f"attribute_weight is a loss weight, 0 or more, not {cfg.attribute_weight}"
        )
    depth = DIT_PRESETS[cfg.preset]().depth if cfg.preset in DIT_PRESETS else None
    if cfg.attribute_weight and depth and not 1 <= cfg.attribute_block <= depth:
        raise ValueError(
            f"attribute_block counts blocks of the {cfg.preset} DiT, 1 to {depth}, "
            f"not {cfg.attribute_block}"
        )
    if cfg.attribute_weight and (cfg.data.source != "shapes" or cfg.shape_contrast):
        raise ValueError(
            "attribute_weight needs Shapes World (data.source=shapes), whose scenes say what "
            "every pixel shows; and not together with shape_contrast"
        )
    if cfg.grounding_weight < 0:
        raise ValueError(
            f"grounding_weight is a loss weight, 0 or more, not {cfg.grounding_weight}"
        )
    if cfg.grounding_weight and (cfg.data.source != "shapes" or cfg.shape_contrast):
        raise ValueError(
            "grounding_weight needs Shapes World (data.source=shapes), whose captions say "
            "which words name which object; and not together with shape_contrast"
        )
    if not 0.0 <= cfg.mean_dropout < 1.0:
        raise ValueError(
            f"mean_dropout is a share of clips, at least 0 and under 1, not {cfg.mean_dropout}"
        )
    if cfg.mean_dropout and cfg.shape_contrast:
        raise ValueError("mean_dropout and shape_contrast: train with one at a time")
    if cfg.grounding_weight and cfg.attribute_weight:
        raise ValueError("grounding_weight and attribute_weight: train with one at a time")
    if cfg.shape_weight and (cfg.data.source != "shapes" or cfg.shape_contrast):
        raise ValueError(
            "shape_weight needs Shapes World (data.source=shapes): it redraws each clip's "
            "scene with other shapes; and not together with shape_contrast"
        )


def main(cfg: DiTTrainConfig, progress: Progress | None = None) -> Path:
    check_config(cfg)
    dist = setup_distributed()
    torch.manual_seed(cfg.data.seed)  # same initial weights on every rank
    run_dir = Path(cfg.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = LossLog(run_dir)

    # 1. Frozen parts, and the latent cache (rank 0 builds it; the others wait, then read it).
    vae = load_vae(cfg.vae_checkpoint, dist.device)
    text_encoder = load_text_encoder(cfg.text_encoder).to(dist.device)

    # Rank 0 builds each file (progress shown, clips rendered in the cache workers) while the
    # others wait; then they only read it, complete on disk.
    def on_main_first(build: Callable[[Progress | None, int], T]) -> T:
        if dist.is_main:
            built = build(progress, cfg.cache_workers)
        if dist.world_size > 1:
            torch.distributed.barrier()
        if not dist.is_main:
            built = build(None, 0)
        return built

    cache = on_main_first(
        lambda shown, workers: LatentCache.build(
            run_dir / "latents.safetensors", vae, cfg.data, cfg.cache_clips, shown, workers
        )
    )
    if cfg.shape_weight:
        on_main_first(
            lambda shown, workers: add_shape_cells(
                cache, vae, run_dir / "shape_cells.safetensors", shown, workers
            )
        )
    continuations = None
    if cfg.continuation_share:
        continuations = on_main_first(
            lambda shown, workers: LatentCache.build(
                run_dir / "continuations.safetensors",
                vae,
                cfg.data,
                cfg.continuation_clips,
                shown,
                workers,
                continuation=True,
            )
        )
    stand_ins = stand_in_words(text_encoder.vocabulary()) if cfg.unknown_background else ()
    draws = CaptionedLatents(
        cache,
        cfg.data.seed,
        dist.rank,
        cfg.unknown_background,
        stand_ins,
        continuations,
        cfg.continuation_share,
    )
    validation = None
    val_data = validation_data(cfg.data, cfg.val_source)
    if dist.is_main and cfg.val_clips > 0 and val_data is not None:
        validation = FlowValidation.build(val_data, cfg.val_clips, vae, text_encoder)
    word_gaps: dict[str, WordGaps] = {}  # log prefix -> gaps, in training and held-out wording
    if dist.is_main and cfg.word_gap_clips > 0 and cfg.data.source == "shapes":
        for prefix, wording in (("gap_", "train"), ("gap_heldout_", "heldout")):
            word_gaps[prefix] = WordGaps.build(
                cfg.word_gap_clips, vae, text_encoder, cfg.data.sizes, wording=wording
            )
    measured = validation is not None or bool(word_gaps)

    # 2. The model, its EMA and optimizer, resumed if a checkpoint is there.
    model_cfg: DiTConfig = replace(
        DIT_PRESETS[cfg.preset](),
        latent_channels=vae.cfg.latent_channels,
        text_dim=text_encoder.dim,
        refine_width=cfg.refine_width,
        pool_queries=cfg.pool_queries,
        attribute_classes=tuple(map(len, ATTRIBUTES.values())) if cfg.attribute_weight else (),
        attribute_block=cfg.attribute_block,
    )
    dit = DiT(model_cfg).to(dist.device)
    labelled = cfg.attribute_weight > 0 or cfg.grounding_weight > 0
    if labelled:
        patch = model_cfg.patch_size[1:]
        add_object_labels(cache, patch, continuation=False)
        if continuations is not None:
            add_object_labels(continuations, patch, continuation=True)
    if cfg.train_part == "refine":
        for name, p in dit.named_parameters():
            p.requires_grad_(name.startswith("refine."))
    groups = _param_groups(dit, cfg.part_lr_scale)
    trained = [p for group in groups for p in group["params"]]  # gradient-clipped together
    ema = EMA(dit, decay=cfg.ema_decay)
    optimizer = torch.optim.AdamW(
        groups,
        lr=cfg.lr,
        betas=(0.9, 0.99),
        weight_decay=cfg.weight_decay,
    )
    step = 0
    last = run_dir / "last.safetensors"
    if last.exists():
        _, meta, _ = load_training_state(last, model=dit, optimizer=optimizer, ema=ema)
        step = meta["step"]
    elif cfg.init_from:
        load_release_part(dit, cfg.init_from, "dit", OPTIONAL_PARTS)  # new parts as built
        ema = EMA(dit, decay=cfg.ema_decay)  # the average starts from the loaded weights
    model = DistributedDataParallel(dit) if dist.world_size > 1 else dit
    averaged = copy.deepcopy(dit) if measured else None  # EMA weights, validated

    def validate() -> None:
        averaged.load_state_dict(ema.averaged_state_dict(dit))
        stats: dict = {"step": step}
        if validation is not None:
            stats["val_loss"] = validation.loss(averaged)
        for prefix, gaps in word_gaps.items():
            stats.update({prefix + a: gap for a, gap in gaps.gaps(averaged).items()})
        log.append(stats)
        if progress:
            progress(step, cfg.steps, stats)

    seed = cfg.data.seed * 1000 + dist.rank + step
    generator = torch.Generator().manual_seed(seed)
    noise_generator = generator  # on a GPU, a generator there, so noise is drawn where it is used
    if dist.device.type != "cpu":
        noise_generator = torch.Generator(dist.device).manual_seed(seed)
    contrast = cfg.shape_contrast > 0

    def draw() -> Draw:
        return draws.draw(
            cfg.batch_size,
            shape_cells=cfg.shape_weight > 0,
            wrong_shapes=contrast,
            labels=labelled,
        )

    for _ in range(step):  # replay the draw order so a resumed run sees what it would have seen
        draw()

    # 3. The loop.
    started = time.time()
    if measured and step == 0 and cfg.steps > 0:
        validate()  # where the run starts (a resumed run measured its steps before)
    while step < cfg.steps:
        batch = draw()
        captions = [
            "" if torch.rand(1, generator=generator).item() < cfg.text_dropout else c
            for c in batch.captions
        ]
        text, text_mask = text_encoder.encode(captions)
        grounding = None
        if cfg.grounding_weight:
            kept = [c != "" for c in captions]
            offsets = text_encoder.token_offsets(captions)
            grounding = ground_phrases(batch.phrases, offsets, kept)
        wrong = None
        if contrast:
            wrong_text, wrong_mask = text_encoder.encode(batch.wrong_captions)
            wrong = WrongText(wrong_text, wrong_mask, torch.tensor([c != "" for c in captions]))
        if cfg.text_noise:
            text = jitter_text(text, text_mask, cfg.text_noise, generator)
        if cfg.text_token_dropout:
            text_mask = drop_tokens(text_mask, cfg.text_token_dropout, generator)
        for group in optimizer.param_groups:  # runs saved before part_lr_scale: no lr_scale
            peak = cfg.lr * group.get("lr_scale", 1.0)
            group["lr"] = learning_rate(step, peak, cfg.warmup, cfg.steps)
        parts: dict[str, float] = {}
        with autocast(cfg.autocast, dist.device):
            loss = dit_loss(
                model,
                batch.latents,
                text,
                text_mask,
                cfg,
                generator,
                noise_generator,
                wrong,
                batch.shape_cells,
                batch.extends,
                batch.labels,
                parts,
                grounding,
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(trained, cfg.grad_clip)
        optimizer.step()
        ema.update(dit)
        step += 1

        if dist.is_main and (step % cfg.log_every == 0 or step == cfg.steps):
            stats = {
                "step": step,
                "loss": loss.item(),
                "grad_norm": grad_norm.item(),
                "size": batch.size,
                "lr": optimizer.param_groups[0]["lr"],
                "elapsed": round(time.time() - started, 1),
                **parts,
            }
            log.append(stats)
            if progress:
                progress(step, cfg.steps, stats)
        if measured and (step % cfg.val_every == 0 or step == cfg.steps):
            validate()
        if dist.is_main and (step % cfg.save_every == 0 or step == cfg.steps):
            save_training_state(
                last,
                model=dit,
                optimizer=optimizer,
                ema=ema,
                config=config_to_dict(cfg),
                meta={"step": step},
            )
            log.plot(("loss", "val_loss", "grad_norm"))

    # 4. The release: EMA weights of the DiT with the VAE, in one file.
    out = run_dir / "model.safetensors"
    if dist.is_main:
        ema.copy_to(dit)
        pipeline = TextToVideoPipeline(vae, dit, text_encoder)
        pipeline.save_pretrained(out, meta={"step": step, "train": config_to_dict(cfg)})
    cleanup_distributed()
    return out
