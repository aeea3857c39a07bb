"""Prompt -> video: text-to-video, image-to-video and extension with one model.

`TextToVideoPipeline.__call__` runs numbered steps like diffusers' `pipeline_wan.py`; its
denoising loop is exactly model -> guidance -> `sampler.step` -> put the given frames back.
Time runs from t = 0 (noise) to t = 1 (data), as `vidora.flow` writes down.

A clip is 4 s (32 frames at 8 fps, 33 through the VAE). Longer videos are made by extension:
the last 5 frames of what exists are encoded (2 latent frames, the causal VAE's first latent
being the first of them alone) and given clean, and the model continues from there; each
chunk adds 27 new frames, and the seam is the model's own continuation, not a cut.

A release whose defaults say `compose_objects` draws a prompt that names several objects one
object at a time and joins the drawings (`vidora.pipelines.composition`), a given first frame cut
into one frame per object; in a longer video each object then continues alone, chunk by chunk,
and each chunk is joined again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from vidora.flow import SAMPLERS, EulerSampler, Sampler, classifier_free_guidance
from vidora.models.dit import DiT, DiTConfig
from vidora.models.prompt_reader import PromptReader
from vidora.models.text_encoder import BUILTIN, TextEncoder, load_text_encoder
from vidora.models.vae import VAEConfig, VideoVAE, latent_frames, to_unit_range
from vidora.pipelines import composition
from vidora.weights import BUILTIN_WEIGHTS
from vidora.world.captions import object_prompts, parse_prompt
from vidora.world.spec import FPS, NUM_FRAMES, parse_size

CLIP_FRAMES = NUM_FRAMES + 1
"""Frames of one generated chunk through the VAE (1 + 4k); the last one is dropped."""
CONTEXT_FRAMES = 5
"""Frames of the previous chunk given to an extension (2 latent frames)."""
EXTENSION_FRAMES = NUM_FRAMES - CONTEXT_FRAMES
"""New frames each extension chunk adds (27)."""
SECONDS = (4, 8, 12)
"""Durations the API offers."""

Progress = Callable[[float], None]
"""Called with the share of the work done, 0..1."""


@dataclass(frozen=True)
class GenerationDefaults:
    """The settings a model was tuned for; saved in its release file."""

    steps: int = 20
    guidance: float = 4.0
    shift: float = 2.0
    sampler: str = "euler"
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    """Guidance applies at the steps whose time t lies in [start, end); the rest use the
    conditional velocity alone, one model call instead of two (Kynkäänniemi et al., 2024)."""
    eta: float = 0.0
    """Share of fresh noise each step takes in: DDIM's eta for "euler" (`EulerSampler`), a fixed
    share of the predicted noise for "renoise" (`RenoiseSampler`); 0 is the plain ODE."""
    compose_objects: bool = False
    """Draw a prompt that names several objects one object at a time and join them where each
    is drawn (`vidora.pipelines.composition`): in text-to-video, in image-to-video (the given
    frame cut into one frame per object by their colour words), and in a longer video's later
    chunks; a video given to extend is continued with the whole prompt."""

    def __post_init__(self) -> None:
        self.make_sampler()  # checks the sampler's name and eta
        # A JSON header gives a list.
        object.__setattr__(
            self, "guidance_interval", check_guidance_interval(*self.guidance_interval)
        )

    def make_sampler(self) -> Sampler:
        """A fresh sampler with these settings' name and eta."""
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose from {', '.join(SAMPLERS)}")
        sampler_class = SAMPLERS[self.sampler]
        if issubclass(sampler_class, EulerSampler):  # the samplers that renew noise
            return sampler_class(self.eta)
        if self.eta:
            stochastic = [name for name, cls in SAMPLERS.items() if issubclass(cls, EulerSampler)]
            raise ValueError(
                f"eta applies to the {' and '.join(stochastic)} samplers, not {self.sampler!r}"
            )
        return sampler_class()


def check_guidance_interval(start: float, end: float) -> tuple[float, float]:
    """(start, end) as floats, or a ValueError unless 0 <= start < end <= 1."""
    if not 0.0 <= start < end <= 1.0:
        raise ValueError(f"guidance_interval must be 0 <= start < end <= 1, not {start}, {end}")
    return float(start), float(end)


@dataclass
class VideoOutput:
    """One (T, H, W, 3) uint8 video per prompt, at `fps` frames per second."""

    videos: list[np.ndarray]
    fps: int = FPS
    settings: list[dict] = field(default_factory=list)
    """The exact prompt and settings each video was made with, so any video can be remade."""


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 -> (3, T, H, W) float in [-1, 1]."""
    return to_unit_range(torch.from_numpy(np.ascontiguousarray(frames)).permute(3, 0, 1, 2))


def tensor_to_frames(video: torch.Tensor) -> np.ndarray:
    """(3, T, H, W) in [-1, 1] -> (T, H, W, 3) uint8."""
    return (
        ((video.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 3, 0).cpu().numpy()
    )


@dataclass(frozen=True)
class _Drawing:
    """How a composed chunk is drawn: the size, steps and guidance, the chunk's progress, and
    whether each object's own frames are kept for a chunk after it."""

    width: int
    height: int
    steps: int
    guidance: float
    progress: Progress
    keep_objects: bool


@dataclass(frozen=True)
class _Read:
    """A prompt as the DiT is given it: whole, one prompt per object (the whole alone when it
    names one object or cannot be cut), and each object's colour word (None: not known)."""

    whole: str
    parts: tuple[str, ...]
    colours: tuple[str, ...] | None


@dataclass
class _ObjectDraw:
    """One object of a composed video (`TextToVideoPipeline._compose_chunk`, `_compose_image`):
    its own prompt, its generator, and the frames its sampling drew last (T, H, W, 3), from
    which the next chunk finds where it is."""

    prompt: str
    generator: torch.Generator
    frames: np.ndarray | None = None


class TextToVideoPipeline:
    """The VAE, the DiT and the text encoder, with the sampling loop that joins them."""

    def __init__(
        self,
        vae: VideoVAE,
        dit: DiT,
        text_encoder: TextEncoder,
        defaults: GenerationDefaults | None = None,
        reader: PromptReader | None = None,
    ):
        self.vae = vae.eval().requires_grad_(False)
        self.dit = dit.eval().requires_grad_(False)
        self.text_encoder = text_encoder
        self.defaults = defaults or GenerationDefaults()
        self.reader = reader
        """Rewrites each prompt it can read in the training wording (`vidora.models.prompt_reader`);
        None: prompts are drawn as written."""
        self._empty: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return next(self.dit.parameters()).device

    # -----------------------------------------------------------------------------------
    # Loading
    # -----------------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, device: str | torch.device = "cpu"
    ) -> TextToVideoPipeline:
        """A release file (VAE, DiT and configs in one safetensors); None: the built-in model."""
        from vidora.train.checkpoint import load_checkpoint

        path = Path(path) if path is not None else builtin_weights()
        tensors, config, meta = load_checkpoint(path, device=device)
        if "vae" not in config or "dit" not in config:
            raise ValueError(
                f"{path} is a checkpoint but not a model release (it has no vae and dit configs)"
            )
        vae = VideoVAE(VAEConfig.from_dict(config["vae"]))
        vae.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("vae.")})
        dit = DiT(DiTConfig.from_dict(config["dit"]))
        dit.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("dit.")})
        defaults = GenerationDefaults(**config.get("defaults", {}))
        text_encoder = load_text_encoder(config.get("text_encoder", BUILTIN))
        reader = None
        if "reader" in config:
            cpu = {k: v.cpu() for k, v in tensors.items() if k.startswith("reader.")}
            reader = PromptReader.from_release(cpu, config["reader"])
        return cls(vae.to(device), dit.to(device), text_encoder.to(device), defaults, reader)

    @classmethod
    def tiny_random(
        cls, seed: int = 0, defaults: GenerationDefaults | None = None, text_dim: int = 32
    ) -> TextToVideoPipeline:
        """A 2-layer random system built in milliseconds, for tests: real code, random videos."""
        from vidora.models.dit import DIT_PRESETS
        from vidora.models.vae import VAE_PRESETS

        text_encoder = TextEncoder.tiny_random(seed, dim=text_dim)
        torch.manual_seed(seed)
        vae = VideoVAE(VAE_PRESETS["tiny"]())
        dit_cfg = DIT_PRESETS["tiny"]()
        dit = DiT(
            DiTConfig(
                **{
                    **dit_cfg.to_dict(),
                    "latent_channels": vae.cfg.latent_channels,
                    "text_dim": text_encoder.dim,
                }
            )
        )
        return cls(vae, dit, text_encoder, defaults or GenerationDefaults(steps=2))

    def save_pretrained(
        self, path: str | Path, meta: dict | None = None, half: bool = False
    ) -> Path:
        """One safetensors file with everything `from_pretrained` needs (weights and configs).

        `half` stores float weights as float16 (half the size; loading casts them back).
        """
        from dataclasses import asdict

        from vidora.train.checkpoint import save_checkpoint

        tensors = {f"vae.{k}": v for k, v in self.vae.state_dict().items()}
        tensors.update({f"dit.{k}": v for k, v in self.dit.state_dict().items()})
        if half:
            tensors = {k: v.half() if v.is_floating_point() else v for k, v in tensors.items()}
        config = {
            "vae": self.vae.cfg.to_dict(),
            "dit": self.dit.cfg.to_dict(),
            "text_encoder": self.text_encoder.name,
            "defaults": asdict(self.defaults),
        }
        if self.reader is not None:  # small, and kept in float32 (its scores are compared)
            tensors.update(self.reader.tensors())
            config["reader"] = self.reader.config()
        return save_checkpoint(path, tensors, config, meta or {})

    # -----------------------------------------------------------------------------------
    # Generation
    # -----------------------------------------------------------------------------------

    @torch.inference_mode()
    def __call__(
        self,
        prompt: str | list[str],
        negative_prompt: str | list[str] | None = None,
        size: str = "64x64",
        seconds: int = 4,
        steps: int | None = None,
        guidance: float | None = None,
        seed: int | list[int] = 0,
        image: np.ndarray | list[np.ndarray] | None = None,
        video: np.ndarray | list[np.ndarray] | None = None,
        progress: Progress | None = None,
    ) -> VideoOutput:
        """Generate one video per prompt.

        image: a first frame (H, W, 3) uint8 of the requested size, per prompt or shared
            (image-to-video). video: frames (T, H, W, 3) uint8 to continue (extension): the
            result is the new `seconds` of video that follow it, without the given frames.
        Each prompt gets its own generator seeded by its seed, so a batch of prompts makes the
        same videos as the same prompts one at a time.
        """
        # 1. Check and broadcast the inputs.
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        n = len(prompts)
        if n == 0 or any(not p.strip() for p in prompts):
            raise ValueError("every prompt must be a non-empty string")
        negatives = (
            _per_prompt(negative_prompt, n, "negative_prompt")
            if negative_prompt is not None
            else [""] * n
        )
        seeds = _per_prompt(seed, n, "seed")
        images = _per_prompt(image, n, "image") if image is not None else None
        videos = _per_prompt(video, n, "video") if video is not None else None
        width, height = parse_size(size)
        if seconds not in SECONDS:
            raise ValueError(
                f"seconds must be one of {', '.join(map(str, SECONDS))}, not {seconds!r}"
            )
        steps = self.defaults.steps if steps is None else steps
        guidance = self.defaults.guidance if guidance is None else guidance
        if steps < 1 or guidance < 0:
            raise ValueError("steps must be >= 1 and guidance >= 0")
        for frames in images or []:
            _check_frames(frames[None], width, height, "image")
        for frames in videos or []:
            _check_frames(frames, width, height, "video")

        # 2. Each prompt as the DiT will read it, one generator per prompt; the whole prompts
        # are encoded once, when a chunk first draws them whole (a composed video draws each
        # object from its own prompt instead).
        readings = [self._read(p) for p in prompts]
        wholes = [r.whole for r in readings]
        generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        text = text_mask = None
        compose = self.defaults.compose_objects and videos is None

        # 3. Generate chunk by chunk: the first from the prompt (and image), later ones extending.
        target = seconds * FPS
        if videos is None:
            chunks = 1 + -(-(target - NUM_FRAMES) // EXTENSION_FRAMES)
        else:
            chunks = -(-target // EXTENSION_FRAMES)
        out: list[np.ndarray] = [np.zeros((0, height, width, 3), np.uint8)] * n
        history = videos
        drawn: list[list[_ObjectDraw]] | None = None  # a composed video's objects, each its own
        for chunk in range(chunks):
            # The VAE takes 1 + 4k frames: continue from 5 frames, or from the last one alone.
            context = CONTEXT_FRAMES if history and min(map(len, history)) >= CONTEXT_FRAMES else 1
            if history is not None:
                first = np.stack([h[-context:] for h in history])  # (n, 5 or 1, H, W, 3)
            elif images is not None:
                first = np.stack([img[None] for img in images])  # (n, 1, H, W, 3)
            else:
                first = None

            def chunk_progress(share: float, chunk: int = chunk) -> None:
                if progress:
                    progress((chunk + share) / chunks)

            # Each object's own frames go on to the next chunk, if there is one.
            how = _Drawing(width, height, steps, guidance, chunk_progress, chunk + 1 < chunks)
            if drawn is not None:
                frames = self._compose_extension(drawn, history, negatives, context, how)
            elif compose and images is not None:
                frames, drawn = self._compose_image(
                    readings, negatives, seeds, generators, images, how
                )
            elif compose:
                frames, drawn = self._compose_chunk(readings, negatives, seeds, generators, how)
            else:
                if text is None:
                    text, text_mask = self._encode_text(wholes + negatives)  # (2n, L, D)
                latents = self._sample(
                    text,
                    text_mask,
                    generators,
                    width,
                    height,
                    steps,
                    guidance,
                    first,
                    chunk_progress,
                )  # one chunk per prompt, its first frames given when `first` is
                frames = self._decode(latents)
            frames = frames[:, :NUM_FRAMES]  # (n, 32, H, W, 3)
            # An extension's context frames are already in the video; a first image is frame 0.
            new = frames[:, context:] if history is not None else frames
            out = [np.concatenate([o, f]) for o, f in zip(out, new, strict=True)]
            history = list(frames)
        if progress:
            progress(1.0)
        settings = [
            {
                "prompt": p,
                "read_as": whole,
                "negative_prompt": neg,
                "size": size,
                "seconds": seconds,
                "steps": steps,
                "guidance": guidance,
                "seed": int(s),
                "sampler": self.defaults.sampler,
                "shift": self.defaults.shift,
                "guidance_interval": list(self.defaults.guidance_interval),
                "eta": self.defaults.eta,
                "compose_objects": self.defaults.compose_objects,
                "image": images is not None,
                "extends": videos is not None,
            }
            for p, whole, neg, s in zip(prompts, wholes, negatives, seeds, strict=True)
        ]
        return VideoOutput([o[:target] for o in out], FPS, settings)

    def _read(self, prompt: str) -> _Read:
        """The prompt as the DiT is given it: with a reader, in the training wording (whole and
        per object), as written when the reader cannot read it (drawn whole); without one, as
        written, cut per object by `object_prompts`."""
        if self.reader is None:
            parts = object_prompts(prompt)
            try:
                colours = tuple(parse_prompt(part).objects[0].colour for part in parts)
            except ValueError:  # a prompt the parser cannot read is one part, never composed
                colours = None
            return _Read(prompt, parts, colours)
        reading = self.reader.read(self.text_encoder, prompt)
        if reading is None:
            return _Read(prompt, (prompt,), None)
        colours = tuple(o.colour for o in reading.objects)
        return _Read(reading.prompt, reading.object_prompts, colours)

    def _compose_chunk(
        self,
        readings: list[_Read],
        negatives: list[str],
        seeds: list[int],
        generators: list[torch.Generator],
        how: _Drawing,
    ) -> tuple[np.ndarray, list[list[_ObjectDraw]]]:
        """Text-to-video's first chunk with each prompt's objects drawn one at a time and
        joined (`vidora.pipelines.composition`): one batch of samplings, each prompt's first
        object from its own generator (so a one-object prompt is drawn as without
        composition), each later object `TRIES` times from its own seeds, the try that overlaps
        the objects already drawn least joined in. Gives the joined frames and, per prompt,
        each object's prompt, generator and (with `keep_objects`) its own frames, from which
        `_compose_extension` continues it."""
        parts = [r.parts for r in readings]
        tries = composition.TRIES
        samplings = [
            [_ObjectDraw(prompt_parts[0], generator)]
            + [
                _ObjectDraw(part, torch.Generator().manual_seed(composition.part_seed(seed, k, t)))
                for k, part in enumerate(prompt_parts[1:], start=1)
                for t in range(tries)
            ]
            for prompt_parts, seed, generator in zip(
                parts, map(int, seeds), generators, strict=True
            )
        ]
        draws = [d for prompt_samplings in samplings for d in prompt_samplings]
        latents = self._sample_objects(samplings, negatives, None, how)  # (m, z, F, h, w)
        joined, chosen, objects, at = [], [], [], 0
        for prompt_parts in parts:
            x = latents[at]
            kept = [draws[at]]
            chosen.append(at)
            at += 1
            for _ in prompt_parts[1:]:
                best = at + composition.least_overlapping(x, latents[at : at + tries])
                x = composition.join(x, latents[best])
                kept.append(draws[best])
                chosen.append(best)
                at += tries
            joined.append(x)
            objects.append(kept)
        frames = self._decode(torch.stack(joined))
        if how.keep_objects:
            self._keep_frames(objects, frames, latents[chosen])
        return frames, objects

    def _compose_extension(
        self,
        objects: list[list[_ObjectDraw]],
        videos: list[np.ndarray],
        negatives: list[str],
        context: int,
        how: _Drawing,
    ) -> np.ndarray:
        """A composed video's next chunk: each object continues from its own prompt and
        generator (one object alone, as extension draws it best), given the joined video's last
        frames (`videos`, one per prompt) with the other objects painted out
        (`composition.painted_out`), and the objects' new latents are joined as the first
        chunk's were. Gives the joined frames."""
        first = np.stack(
            [
                composition.painted_out(
                    video[-context:],
                    o.frames[-context:],
                    [other.frames[-context:] for other in prompt_objects if other is not o],
                )
                for video, prompt_objects in zip(videos, objects, strict=True)
                for o in prompt_objects
            ]
        )  # (m, k, H, W, 3): each object's context
        return self._draw_objects(objects, negatives, first, how)

    def _compose_image(
        self,
        readings: list[_Read],
        negatives: list[str],
        seeds: list[int],
        generators: list[torch.Generator],
        images: list[np.ndarray],
        how: _Drawing,
    ) -> tuple[np.ndarray, list[list[_ObjectDraw]]]:
        """Image-to-video with each prompt's objects drawn one at a time: each object from its
        own cut of the prompt, given the image with the other objects painted out
        (`composition.split_image`, which finds each object by its colour word), and the
        samplings joined. The given image places each object, so one sampling an object. A
        prompt whose image cannot be split (or that names one object) is drawn whole from the
        whole image, as without composition."""
        objects: list[list[_ObjectDraw]] = []
        firsts: list[np.ndarray] = []
        for read, seed, generator, image in zip(readings, seeds, generators, images, strict=True):
            parts, split = read.parts, None
            if len(parts) > 1 and read.colours is not None:
                split = composition.split_image(image, list(read.colours))
            if split is None:
                parts, split = (read.whole,), [image]
            draws = [generator] + [
                torch.Generator().manual_seed(composition.part_seed(int(seed), k, 0))
                for k in range(1, len(parts))
            ]
            objects.append([_ObjectDraw(p, g) for p, g in zip(parts, draws, strict=True)])
            firsts += split
        first = np.stack([f[None] for f in firsts])  # (m, 1, H, W, 3)
        frames = self._draw_objects(objects, negatives, first, how)
        return frames, objects

    def _draw_objects(
        self,
        objects: list[list[_ObjectDraw]],
        negatives: list[str],
        first: np.ndarray,
        how: _Drawing,
    ) -> np.ndarray:
        """One sampling per object (its own prompt and generator, its first frames `first`,
        (m, k, H, W, 3), given), each prompt's samplings joined in order and decoded; with
        `keep_objects` each object keeps its own frames for the next chunk."""
        latents = self._sample_objects(objects, negatives, first, how)  # (m, z, F, h, w)
        joined, at = [], 0
        for prompt_objects in objects:
            x = latents[at]
            for k in range(1, len(prompt_objects)):
                x = composition.join(x, latents[at + k])
            joined.append(x)
            at += len(prompt_objects)
        frames = self._decode(torch.stack(joined))
        if how.keep_objects:
            self._keep_frames(objects, frames, latents)
        return frames

    def _sample_objects(
        self,
        samplings: list[list[_ObjectDraw]],
        negatives: list[str],
        first: np.ndarray | None,
        how: _Drawing,
    ) -> torch.Tensor:
        """One batch of samplings, each from its own prompt and generator, prompt after prompt
        (`samplings`, with each prompt's negative), its first frames given when `first`
        (m, k, H, W, 3) is: (m, z, F, h, w) latents."""
        draws = [d for prompt_samplings in samplings for d in prompt_samplings]
        negative_texts = [
            negative
            for prompt_samplings, negative in zip(samplings, negatives, strict=True)
            for _ in prompt_samplings
        ]
        text, text_mask = self._encode_text([d.prompt for d in draws] + negative_texts)
        return self._sample(
            text,
            text_mask,
            [d.generator for d in draws],
            how.width,
            how.height,
            how.steps,
            how.guidance,
            first,
            how.progress,
        )

    def _keep_frames(
        self, objects: list[list[_ObjectDraw]], joined: np.ndarray, latents: torch.Tensor
    ) -> None:
        """Keep each object's own first `NUM_FRAMES` frames for the next chunk: a lone object's
        are its video's (`joined`, one per prompt), each object of a composed scene its own
        sampling's (`latents`, one per object in order) decoded."""
        flat = [(p, o) for p, prompt_objects in enumerate(objects) for o in prompt_objects]
        shared = [k for k, (p, _) in enumerate(flat) if len(objects[p]) > 1]
        own = dict(zip(shared, self._decode(latents[shared]), strict=True)) if shared else {}
        for k, (p, o) in enumerate(flat):
            o.frames = (own[k] if k in own else joined[p])[:NUM_FRAMES]

    def _sample(
        self,
        text: torch.Tensor,
        text_mask: torch.Tensor,
        generators: list[torch.Generator],
        width: int,
        height: int,
        steps: int,
        guidance: float,
        first: np.ndarray | None,
        progress: Progress,
        start: tuple[torch.Tensor, float] | None = None,
    ) -> torch.Tensor:
        """The denoised latents (n, z, F, h, w) of one chunk per prompt, its first frames given
        when `first` (n, k, H, W, 3) is; `text` holds the n prompts' states, then their
        negatives'. With `start` (normalised latents (n, z, F, h, w), a time) the run begins
        part-way: the latents put on the path at the first step from that time on (SDEdit)."""
        n = len(generators)
        f = latent_frames(CLIP_FRAMES)
        down = self.vae.spatial_factor
        shape = (self.vae.cfg.latent_channels, f, height // down, width // down)

        # a. Noise, one generator per prompt.
        x = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(
            self.device
        )  # (n, z, F, h, w)

        # b. Frame conditioning: encode the given frames, mark their latent frames as clean.
        cond = torch.zeros(n, f, dtype=torch.bool, device=self.device)
        clean = torch.zeros_like(x)
        if first is not None:
            given = torch.stack([frames_to_tensor(frames) for frames in first]).to(
                self.device
            )  # (n, 3, k, H, W)
            latents = self.vae.normalize(self.vae.encode(given)[0])  # (n, z, k', h, w)
            clean[:, :, : latents.shape[2]] = latents
            cond[:, : latents.shape[2]] = True
        keep = cond[:, None, :, None, None]  # (n, 1, F, 1, 1)
        x = torch.where(keep, clean, x)

        # c. Denoise: model -> guidance -> sampler.step -> put the given frames back.
        sampler = self.defaults.make_sampler()
        sampler.set_timesteps(steps, shift=self.defaults.shift)
        begin = 0
        if start is not None:
            begin = sampler.start_from(start[1])
            t0 = float(sampler.timesteps[begin])
            x = torch.where(keep, clean, t0 * start[0].to(x) + (1 - t0) * x)
        low, high = self.defaults.guidance_interval
        for i in range(begin, len(sampler.timesteps)):
            t = sampler.timesteps[i]
            if guidance != 1.0 and low <= float(t) < high:
                v_cond, v_uncond = self.dit(
                    torch.cat([x, x]),
                    t.expand(2 * n).to(self.device),
                    text,
                    text_mask,
                    torch.cat([cond, cond]),
                ).chunk(2)
                v = classifier_free_guidance(v_cond, v_uncond, guidance)
            else:
                v = self.dit(x, t.expand(n).to(self.device), text[:n], text_mask[:n], cond)
            # Fresh noise for a stochastic step, from each prompt's own generator.
            z = None
            if sampler.eta:
                z = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(x)
            x = sampler.step(v, i, x, noise=z)
            x = torch.where(keep, clean, x)
            progress((i + 1) / len(sampler.timesteps))

        return x

    def _decode(self, latents: torch.Tensor) -> np.ndarray:
        """(n, z, F, h, w) latents -> (n, 33, H, W, 3) uint8 frames."""
        video = self.vae.decode(self.vae.denormalize(latents))  # (n, 3, 33, H, W)
        return np.stack([tensor_to_frames(v) for v in video])

    def _encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = self.text_encoder.encode(prompts)
        return states.to(self.device), mask.to(self.device)


def builtin_weights() -> Path:
    """The built-in model's release file, shipped inside the package."""
    if not BUILTIN_WEIGHTS.exists():
        raise FileNotFoundError(
            f"the built-in model is not in this install ({BUILTIN_WEIGHTS} is missing); "
            "pass --checkpoint PATH"
        )
    return BUILTIN_WEIGHTS


def _per_prompt(value, n: int, name: str) -> list:
    """A single value for every prompt, or a list with one per prompt."""
    if isinstance(value, list):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} entries for {n} prompts")
        return value
    return [value] * n


def _check_frames(frames: np.ndarray, width: int, height: int, name: str) -> None:
    if (
        frames.ndim != 4
        or frames.shape[1:] != (height, width, 3)
        or frames.dtype != np.uint8
        or not len(frames)
    ):
        raise ValueError(
            f"{name} must be uint8 frames of {width}x{height} (T, {height}, {width}, 3), "
            f"got {frames.dtype} {tuple(frames.shape)}"
        )
