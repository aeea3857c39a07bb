"""How fast Vidora makes a video on this CPU, and against diffusers' WanPipeline of matching size.

Run: .venv/bin/python bench/bench_generate.py [--checkpoint PATH] [--runs N] [--threads N]
                                              [--skip-wan] [--skip-cold]

Measures, at the model's default settings (a 4 s 64x64 video):
1. warm generation, prompt -> uint8 frames: median of N runs after a warm-up (target <= 3 s);
2. cold `vidora generate PROMPT -o OUT.mp4` in a fresh process, wall time (target <= 10 s);
3. that process's peak memory, its own max RSS from wait4 (target <= 3 GB);
4. diffusers' `WanPipeline`, built here offline with random parts matched to Vidora's: every
   component within 10% of Vidora's parameters (transformer of the DiT's width, heads and MLP
   ratio, depth chosen to match; Wan VAE widths chosen to match; a UMT5 encoder of MiniLM-L6's
   shape), the same latent tokens (33 frames of 64x64 -> 9x8x8 latents -> 144 tokens of 1x2x2),
   the same sampler, steps, shift and guidance (CFG on: two denoiser passes at every step in
   both; a release that guides only part of the path is timed at its own interval too).
   Both run warm, interleaved (so drifting background load hits both alike), with the same torch
   threads and no cached text embeddings; the speedup is the ratio of medians (target >= 2x).

Speed does not depend on the weights, so without the built-in file (or --checkpoint) the bench
builds the built-in size with random weights, and says which it measured. Each stage (text,
denoiser, decode) is timed and its FLOPs counted, so the speedup can be traced to its source.
Figures go to a rich table and, last, one JSON line.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in this bench may reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field, replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from vidora.models.dit import DIT_PRESETS, DiT  # noqa: E402
from vidora.models.text_encoder import builtin_path, load_text_encoder  # noqa: E402
from vidora.models.vae import VAE_PRESETS, VideoVAE  # noqa: E402
from vidora.pipelines import GenerationDefaults, TextToVideoPipeline  # noqa: E402
from vidora.pipelines.text_to_video import CLIP_FRAMES, builtin_weights  # noqa: E402
from vidora.world.spec import parse_size  # noqa: E402

PROMPT = "a red circle moving right on a black background"
TWO_OBJECTS = "a red circle moving right and a blue square rising on a black background"
"""A release that draws several objects one at a time (`compose_objects`) is also timed on this."""
SIZE, SECONDS = "64x64", 4
TARGETS = {"warm_s": 3.0, "cold_s": 10.0, "peak_gb": 3.0, "speedup": 2.0}
STAGES = ("text", "denoiser", "decode")
"""The timed parts of a generation; the rest (noise, sampler, post-processing) is `other`."""
RANDOM = "random weights, built-in size (no built-in file yet)"
console = Console(width=None if sys.stdout.isatty() else 110)


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------
# The two pipelines
# ---------------------------------------------------------------------------------------


def load_vidora(checkpoint: str | None) -> tuple[TextToVideoPipeline, str, Path | None]:
    """(pipeline, what is measured, the --checkpoint a CLI run needs): the given file, else the
    built-in one (the CLI's default), else the built-in size with random weights (not saved)."""
    if checkpoint is not None:
        pipe = TextToVideoPipeline.from_pretrained(checkpoint)
        return pipe, f"checkpoint {checkpoint}", Path(checkpoint)
    try:
        path = builtin_weights()
    except FileNotFoundError:
        text_encoder = load_text_encoder("minilm")
        torch.manual_seed(0)
        vae = VideoVAE(VAE_PRESETS["small"]())
        dit_cfg = replace(
            DIT_PRESETS["small"](),
            latent_channels=vae.cfg.latent_channels,
            text_dim=text_encoder.dim,
        )
        pipe = TextToVideoPipeline(vae, DiT(dit_cfg), text_encoder, GenerationDefaults())
        return pipe, RANDOM, None
    return TextToVideoPipeline.from_pretrained(path), f"built-in model {path.name}", None


@dataclass
class WanBuild:
    pipe: object
    """The diffusers WanPipeline."""
    facts: dict
    """What was built and how it matches Vidora, for the table and the JSON."""


def build_wan(vidora: TextToVideoPipeline) -> WanBuild:
    """A WanPipeline whose parts mirror `vidora`'s in size; random weights, nothing downloaded."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        FlowMatchHeunDiscreteScheduler,
        WanPipeline,
        WanTransformer3DModel,
    )
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast, UMT5Config, UMT5EncoderModel

    dit_cfg, z = vidora.dit.cfg, vidora.vae.cfg.latent_channels
    minilm = vidora.text_encoder.model.config

    # Tokenizer: whole words of MiniLM's vocabulary (so a prompt makes about as many tokens),
    # closed by an end token as T5's are.
    words = (builtin_path() / "vocab.txt").read_text(encoding="utf-8").splitlines()
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="$A [SEP]", special_tokens=[("[SEP]", vocab["[SEP]"])]
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", eos_token="[SEP]"
    )

    # Text encoder: UMT5 of MiniLM-L6's width, depth, heads and vocabulary; its gated FFN has
    # three matrices to BERT's two, so it is 2/3 as wide for the same parameters.
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(
        UMT5Config(
            vocab_size=len(vocab),
            d_model=minilm.hidden_size,
            num_layers=minilm.num_hidden_layers,
            num_heads=minilm.num_attention_heads,
            d_kv=minilm.hidden_size // minilm.num_attention_heads,
            d_ff=2 * minilm.intermediate_size // 3,
            feed_forward_proj="gated-gelu",
            dropout_rate=0.0,
        )
    ).eval()

    # Wan's VAE is 8x in space; Vidora's may be 4x: scale the patch so both see the same tokens.
    pt, ph, pw = dit_cfg.patch_size
    factor = vidora.vae.spatial_factor
    wan_patch = (pt, ph * factor // 8, pw * factor // 8)

    # Transformer: the DiT's width, heads, MLP ratio and patch; the depth that matches the DiT's
    # parameters (Vidora's per-block adaLN makes its blocks heavier, so Wan gets more of them).
    def transformer(layers: int) -> WanTransformer3DModel:
        return WanTransformer3DModel(
            patch_size=wan_patch,
            num_attention_heads=dit_cfg.heads,
            attention_head_dim=dit_cfg.width // dit_cfg.heads,
            in_channels=z,
            out_channels=z,
            text_dim=minilm.hidden_size,
            ffn_dim=int(dit_cfg.width * dit_cfg.mlp_ratio),
            num_layers=layers,
        )

    # VAE: Wan's own (4x time, 8x space), z = Vidora's latent channels; encoder and decoder widths
    # that match Vidora's parameter counts (text-to-video runs only the decoder).
    def wan_vae(base: int, decoder_base: int) -> AutoencoderKLWan:
        return AutoencoderKLWan(
            base_dim=base,
            decoder_base_dim=decoder_base,
            z_dim=z,
            latents_mean=[0.0] * z,
            latents_std=[1.0] * z,
        )

    def closest(options: range, build: Callable[[int], nn.Module], target: nn.Module) -> int:
        with torch.device("meta"):  # counts parameters without allocating them
            return min(options, key=lambda n: abs(count(build(n)) / count(target) - 1))

    layers = closest(range(1, 4 * dit_cfg.depth), transformer, vidora.dit)
    dec_base = closest(range(4, 129), lambda b: wan_vae(8, b).decoder, vidora.vae.decoder)
    enc_base = closest(range(4, 129), lambda b: wan_vae(b, 8).encoder, vidora.vae.encoder)
    torch.manual_seed(0)
    wan_transformer, vae = transformer(layers).eval(), wan_vae(enc_base, dec_base).eval()

    # diffusers' stochastic flow-matching Euler is Vidora's renoise at eta 1: the same work a step.
    schedulers = {
        "euler": (FlowMatchEulerDiscreteScheduler, {}),
        "heun": (FlowMatchHeunDiscreteScheduler, {}),
        "renoise": (FlowMatchEulerDiscreteScheduler, {"stochastic_sampling": True}),
    }
    scheduler_class, options = schedulers[vidora.defaults.sampler]
    scheduler = scheduler_class(shift=vidora.defaults.shift, **options)
    pipe = WanPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=vae,
        scheduler=scheduler,
        transformer=wan_transformer,
    )
    pipe.set_progress_bar_config(disable=True)
    facts = {
        "transformer": {
            "layers": layers,
            "width": dit_cfg.width,
            "heads": dit_cfg.heads,
            "ffn": int(dit_cfg.width * dit_cfg.mlp_ratio),
            "params": count(wan_transformer),
        },
        "vae": {
            "base_dim": enc_base,
            "decoder_base_dim": dec_base,
            "z_dim": z,
            "encoder_params": count(vae.encoder),
            "decoder_params": count(vae.decoder),
        },
        "text_encoder": {
            "kind": "UMT5EncoderModel, random",
            "d_model": minilm.hidden_size,
            "layers": minilm.num_hidden_layers,
            "params": count(text_encoder),
        },
        "scheduler": type(scheduler).__name__,
        # Wan pads every prompt to this length; Vidora's cap, far kinder to Wan than its 512.
        "max_sequence_length": vidora.text_encoder.max_length,
        "param_ratios_wan_over_vidora": {
            "denoiser": count(wan_transformer) / count(vidora.dit),
            "vae_decoder": count(vae.decoder) / count(vidora.vae.decoder),
            "vae_encoder": count(vae.encoder) / count(vidora.vae.encoder),
            "text_encoder": count(text_encoder) / count(vidora.text_encoder.model),
        },
    }
    return WanBuild(pipe, facts)


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------


class StageClock:
    """Wraps methods in place to add up their wall time and calls per stage, and keep the
    shape of the last tensor each one was given (the denoiser's: the latent it saw)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.shapes: dict[str, tuple] = {}

    def wrap(self, obj: object, method: str, stage: str) -> None:
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - start
                self.calls[stage] = self.calls.get(stage, 0) + 1
                first = args[0] if args else next(iter(kwargs.values()), None)
                if isinstance(first, torch.Tensor):
                    self.shapes[stage] = tuple(first.shape)

        setattr(obj, method, timed)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()


@dataclass
class Contender:
    """One pipeline under test: how it makes one video, and the clock on its stages."""

    name: str
    generate: Callable[[int], np.ndarray]
    """seed -> (T, H, W, 3) uint8 frames."""
    clock: StageClock
    modules: dict[str, nn.Module]
    """The module doing each stage's work, to give FLOPs to stages."""
    runs: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    gflops: dict[str, float] = field(default_factory=dict)
    """GFLOPs per video: "total" and per stage."""
    frames_shape: tuple = ()

    def warm_up(self) -> None:
        """One untimed run that counts the FLOPs (the same whatever the seed)."""
        counter = FlopCounterMode(display=False)
        with counter:
            self.generate(0)
        by_module = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
        self.gflops = {"total": counter.get_total_flops() / 1e9}
        for stage, module in self.modules.items():
            self.gflops[stage] = by_module.get(type(module).__name__, 0) / 1e9

    def run(self, seed: int) -> None:
        self.clock.reset()
        start = time.perf_counter()
        self.frames_shape = self.generate(seed).shape
        total = time.perf_counter() - start
        self.runs.append(total)
        other = total - sum(self.clock.seconds.values())
        self.stages.append({**self.clock.seconds, "other": other})

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def median_stage(self, stage: str) -> float:
        return statistics.median(s.get(stage, 0.0) for s in self.stages)

    def summary(self, patch: tuple[int, int, int]) -> dict:
        stages = {s: self.median_stage(s) for s in (*STAGES, "other")}
        latent = self.clock.shapes["denoiser"][1:]  # (C, F, h, w)
        return {
            "warm_median_s": self.median,
            "warm_runs_s": self.runs,
            "stages_median_s": stages,
            "gflops_per_video": self.gflops,
            "gflop_per_s": {s: self.gflops[s] / stages[s] for s in STAGES if stages[s] > 0},
            "denoiser_calls": self.clock.calls.get("denoiser"),
            "frames": list(self.frames_shape),
            "latent": list(latent),
            "tokens": (latent[1] // patch[0]) * (latent[2] // patch[1]) * (latent[3] // patch[2]),
        }


def vidora_contender(pipe: TextToVideoPipeline) -> Contender:
    clock = StageClock()
    clock.wrap(pipe.text_encoder, "encode", "text")  # tokenizer and encoder, both prompts
    clock.wrap(pipe.dit, "forward", "denoiser")
    clock.wrap(pipe.vae, "decode", "decode")

    def generate(seed: int) -> np.ndarray:
        return pipe(PROMPT, size=SIZE, seconds=SECONDS, seed=seed).videos[0]

    modules = {"text": pipe.text_encoder.model, "denoiser": pipe.dit, "decode": pipe.vae.decoder}
    return Contender("Vidora", generate, clock, modules)


def wan_contender(build: WanBuild, defaults: GenerationDefaults) -> Contender:
    pipe = build.pipe
    clock = StageClock()
    clock.wrap(pipe, "encode_prompt", "text")  # tokenizer and encoder, both prompts
    clock.wrap(pipe.transformer, "forward", "denoiser")
    clock.wrap(pipe.vae, "decode", "decode")
    width, height = parse_size(SIZE)

    def generate(seed: int) -> np.ndarray:
        out = pipe(
            prompt=PROMPT,
            negative_prompt="",
            height=height,
            width=width,
            num_frames=CLIP_FRAMES,
            num_inference_steps=defaults.steps,
            guidance_scale=defaults.guidance,
            generator=torch.Generator().manual_seed(seed),
            output_type="np",
            max_sequence_length=build.facts["max_sequence_length"],
        )
        return (out.frames[0] * 255).round().astype(np.uint8)  # (T, H, W, 3), as Vidora's

    modules = {"text": pipe.text_encoder, "denoiser": pipe.transformer, "decode": pipe.vae.decoder}
    return Contender("Wan", generate, clock, modules)


def cold_generate(checkpoint: Path | None, out_dir: Path) -> dict:
    """`vidora generate` in a fresh process: wall seconds, its peak RSS, what it wrote."""
    from vidora.media import probe_mp4

    out, log = out_dir / "cold.mp4", out_dir / "cold.log"
    cmd = [str(Path(sys.executable).with_name("vidora")), "generate", PROMPT, "-o", str(out)]
    cmd += ["--checkpoint", str(checkpoint)] if checkpoint is not None else []
    with open(log, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (ru_maxrss in KiB)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{log.read_text()[-2000:]}")
    info = probe_mp4(out)
    return {
        "wall_s": wall,
        "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9,
        "frames": info.frames,
        "size": f"{info.width}x{info.height}",
        "checkpoint": str(checkpoint or "built-in"),
    }


# ---------------------------------------------------------------------------------------
# Main and report
# ---------------------------------------------------------------------------------------


def warm_median(pipe: TextToVideoPipeline, prompt: str, runs: int) -> float:
    """Median seconds of `runs` generations of `prompt` at the bench's size and length, after
    one warm-up run (seed 0)."""
    times = []
    for seed in range(runs + 1):
        start = time.perf_counter()
        pipe(prompt, size=SIZE, seconds=SECONDS, seed=seed)
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", help="a release file (default: the built-in one if any)")
    parser.add_argument("--runs", type=int, default=3, help="timed warm runs per pipeline")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch threads for everything (default: "
        "torch's own); 1 is faster while another process loads the CPU",
    )
    parser.add_argument("--skip-wan", action="store_true", help="no WanPipeline comparison")
    parser.add_argument("--skip-cold", action="store_true", help="no cold `vidora generate`")
    args = parser.parse_args()
    if args.runs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--runs and --threads must be >= 1")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # the cold child's torch reads it
    results: dict = {
        "bench": "generate",
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
        "prompt": PROMPT,
        "size": SIZE,
        "seconds": SECONDS,
    }

    with console.status("loading Vidora"):
        try:
            vidora, measured, release = load_vidora(args.checkpoint)
        except (FileNotFoundError, ValueError) as error:
            parser.error(f"--checkpoint: {error}")
    d = vidora.defaults
    results.update(
        measured=measured, steps=d.steps, guidance=d.guidance, sampler=d.sampler, shift=d.shift
    )
    console.print(
        f"[bold]Vidora[/]: {measured}; {d.steps} {d.sampler} steps, guidance "
        f"{d.guidance:g}, shift {d.shift:g}; torch threads {results['threads']}; "
        f"load average {results['loadavg_start'][0]}"
    )
    if results["loadavg_start"][0] > results["cores"] and results["threads"] > 1:
        console.print(
            f"[yellow]The CPU is busy (load {results['loadavg_start'][0]} on "
            f"{results['cores']} cores): every figure will be inflated, most of all "
            "with several threads, which wait for each other; --threads 1 suffers less."
        )

    with tempfile.TemporaryDirectory(prefix="vidora-bench-") as tmp:
        # Cold first, while this process sits idle and the child has the CPU to itself.
        if not args.skip_cold:
            if measured == RANDOM:
                release = vidora.save_pretrained(Path(tmp) / "random.safetensors")
            with console.status("cold `vidora generate` in a fresh process"):
                results["cold"] = cold_generate(release, Path(tmp))

    # The head-to-head guides every step, as Wan does; a release that guides only part of the
    # path (`guidance_interval`) is also timed at its own defaults, first (each contender's
    # run resets the stage clock that these calls also tick).
    vidora.defaults = replace(d, guidance_interval=(0.0, 1.0))
    contenders = [vidora_contender(vidora)]
    build = None
    if not args.skip_wan:
        with console.status("building diffusers' WanPipeline"):
            build = build_wan(vidora)
        contenders.append(wan_contender(build, d))
    own = TextToVideoPipeline(vidora.vae, vidora.dit, vidora.text_encoder, d)
    if d.guidance_interval != (0.0, 1.0):
        # The warm-up run matters: the unguided steps run at batch 1, a shape not yet seen.
        with console.status("Vidora at its own guidance interval"):
            results["warm_own_interval_s"] = warm_median(own, PROMPT, args.runs)
        results["guidance_interval"] = list(d.guidance_interval)
    if d.compose_objects:
        # One sampling per object, a later object's tries batched with the first: more work.
        with console.status("Vidora on a two-object prompt, one object at a time"):
            results["warm_two_objects_s"] = warm_median(own, TWO_OBJECTS, args.runs)
        results["two_objects_prompt"] = TWO_OBJECTS
    for c in contenders:
        with console.status(f"{c.name}: warm-up run (counting FLOPs)"):
            c.warm_up()
    for i in range(args.runs):  # interleaved, so drifting background load hits both alike
        for c in contenders:
            with console.status(f"{c.name}: timed run {i + 1}/{args.runs}"):
                c.run(seed=1 + i)
    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report(results, vidora, contenders, build)


def report(
    results: dict, vidora: TextToVideoPipeline, contenders: list[Contender], build: WanBuild | None
) -> None:
    """Add the figures and verdicts to `results`; print the table, then the JSON line."""
    v = contenders[0]
    cfg = vidora.dit.cfg
    vid = results["vidora"] = {
        **v.summary(cfg.patch_size),
        "dit": {
            "depth": cfg.depth,
            "width": cfg.width,
            "heads": cfg.heads,
            "params": count(vidora.dit),
        },
        "vae": {
            "encoder_params": count(vidora.vae.encoder),
            "decoder_params": count(vidora.vae.decoder),
        },
        "text_encoder": {
            "kind": f"{vidora.text_encoder.name} ({type(vidora.text_encoder.model).__name__})",
            "params": count(vidora.text_encoder.model),
        },
    }
    ok = {"warm": v.median <= TARGETS["warm_s"]}
    if "cold" in results:
        ok["cold"] = results["cold"]["wall_s"] <= TARGETS["cold_s"]
        ok["memory"] = results["cold"]["peak_rss_gb"] <= TARGETS["peak_gb"]
    wan: dict = {}
    if build is not None:
        w = contenders[1]
        wan = results["wan"] = {
            **build.facts,
            **w.summary(tuple(build.pipe.transformer.config.patch_size)),
        }
        results["speedup"] = w.median / v.median
        results["speedup_by_stage"] = {s: w.median_stage(s) / v.median_stage(s) for s in STAGES}
        ok["speedup"] = results["speedup"] >= TARGETS["speedup"]
        ok["matched"] = (
            all(abs(r - 1) <= 0.10 for r in wan["param_ratios_wan_over_vidora"].values())
            and wan["tokens"] == vid["tokens"]
            and wan["denoiser_calls"] == 2 * vid["denoiser_calls"]  # batch 1 vs batch 2
        )
    results["targets"], results["ok"] = TARGETS, ok

    mark = {True: "[green]ok[/]", False: "[red]MISSED[/]"}
    table = Table(title=f"Vidora generate bench: {results['measured']}")
    for name in ("figure", "Vidora", "Wan (diffusers)", "target / match"):
        table.add_column(name, justify="left" if name == "figure" else "right")

    def row(name: str, fmt: Callable[[dict], str], note: str = "") -> None:
        table.add_row(name, fmt(vid), fmt(wan) if wan else "", note)

    def stage(d: dict, s: str) -> str:
        seconds = d["stages_median_s"][s]
        if s == "other":
            return f"{seconds:.2f} s"
        gf, rate = d["gflops_per_video"][s], d["gflop_per_s"][s]
        return f"{seconds:.2f} s: {gf:.1f} GF at {rate:.0f} GF/s"

    def ratio(key: str) -> str:
        return f"ratio {wan['param_ratios_wan_over_vidora'][key]:.3f}" if wan else ""

    row(
        f"warm {SECONDS} s {SIZE}, median of {len(v.runs)}",
        lambda d: f"{d['warm_median_s']:.2f} s",
        f"<= {TARGETS['warm_s']:g} s {mark[ok['warm']]}",
    )
    row("  each run", lambda d: " ".join(f"{t:.2f}" for t in d["warm_runs_s"]))
    if "warm_own_interval_s" in results:
        start, end = results["guidance_interval"]
        table.add_row(
            f"  guided only at t in [{start:g}, {end:g}) (its default)",
            f"{results['warm_own_interval_s']:.2f} s",
            "",
            "",
        )
    if "warm_two_objects_s" in results:
        table.add_row(
            "  two objects, one at a time (its default)",
            f"{results['warm_two_objects_s']:.2f} s",
            "",
            "",
        )
    for s in (*STAGES, "other"):
        by = results.get("speedup_by_stage", {})
        row(f"  {s} (median)", lambda d, s=s: stage(d, s), f"{by[s]:.1f}x" if s in by else "")
    if wan:
        table.add_row(
            "[bold]speedup[/] (Wan / Vidora)",
            f"{results['speedup']:.2f}x",
            "",
            f">= {TARGETS['speedup']:g}x {mark[ok['speedup']]}",
        )
    if "cold" in results:
        cold = results["cold"]
        table.add_row(
            "cold `vidora generate`",
            f"{cold['wall_s']:.2f} s",
            "",
            f"<= {TARGETS['cold_s']:g} s {mark[ok['cold']]}",
        )
        table.add_row(
            "  its peak RSS",
            f"{cold['peak_rss_gb']:.2f} GB",
            "",
            f"<= {TARGETS['peak_gb']:g} GB {mark[ok['memory']]}",
        )
        table.add_row("  video written", f"{cold['frames']} frames {cold['size']}", "", "")
    row("GFLOPs per video", lambda d: f"{d['gflops_per_video']['total']:.1f}")
    table.add_row(
        "denoiser params",
        f"{vid['dit']['params'] / 1e6:.2f} M",
        f"{wan['transformer']['params'] / 1e6:.2f} M" if wan else "",
        ratio("denoiser"),
    )
    table.add_row(
        "  blocks x width, heads",
        f"{cfg.depth} x {cfg.width}, {cfg.heads}",
        "{layers} x {width}, {heads}".format(**wan["transformer"]) if wan else "",
    )
    for part in ("decoder", "encoder"):
        table.add_row(
            f"VAE {part} params",
            f"{vid['vae'][part + '_params'] / 1e6:.2f} M",
            f"{wan['vae'][part + '_params'] / 1e6:.2f} M" if wan else "",
            ratio(f"vae_{part}"),
        )
    row(
        "text encoder params",
        lambda d: f"{d['text_encoder']['params'] / 1e6:.2f} M",
        ratio("text_encoder"),
    )
    table.add_row(
        "  text encoder",
        f"{vid['text_encoder']['kind']}, pads to longest",
        f"{wan['text_encoder']['kind']}, pads to {wan['max_sequence_length']}" if wan else "",
    )
    row("latent (C, F, h, w) -> tokens", lambda d: f"{tuple(d['latent'])} -> {d['tokens']}")
    table.add_row(
        "denoiser calls",
        f"{vid['denoiser_calls']} at batch 2 (CFG)",
        f"{wan['denoiser_calls']} at batch 1" if wan else "",
        f"{results['steps']} {results['sampler']} steps, CFG {results['guidance']:g}",
    )
    row("frames out", lambda d: str(tuple(d["frames"])))
    console.print(table)
    if wan:
        console.print(f"Parts within 10%, same tokens, same passes: {mark[ok['matched']]}")
    console.print(
        f"torch threads {results['threads']} for both. Load average (1, 5, 15 min) "
        f"{results['loadavg_start']} at start, {results['loadavg_end']} at end, on "
        f"{results['cores']} cores. GF: matmul and convolution FLOPs (torch's counter has no "
        "formula for the CPU attention kernel; small at 144 tokens)."
    )
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
