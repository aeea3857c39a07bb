"""Speed of Vidora's text-to-video pipeline on this CPU, against diffusers' WanPipeline at matching size.

Run: .venv/bin/python bench/bench_generate.py [--checkpoint PATH] [--runs N] [--skip-wan] [--skip-cold]

Measures, at the model's default settings (a 4 s 64x64 video):
1. warm generation, prompt -> uint8 frames: median of N runs after a warm-up (target <= 3 s);
2. cold `vidora generate PROMPT -o OUT.mp4` in a fresh process, wall time (target <= 10 s);
3. that process's peak memory, max RSS (target <= 3 GB);
4. diffusers' `WanPipeline` built here, offline, with random parts matched to Vidora's: its
   transformer within 10% of the DiT's parameters, the same width, heads and MLP ratio, the same
   latent token count (33 frames of 64x64 -> 9x8x8 latents -> 144 tokens of 1x2x2), the same
   sampler, steps, shift and guidance (CFG on: two forward passes per step in both), a UMT5
   encoder of MiniLM-L6's shape, a Wan VAE whose decoder has the parameters of Vidora's. Both
   run warm, interleaved (so background load hits both alike), with the same torch threads, no
   cached text embeddings; Vidora's speedup is the ratio of medians (target >= 2x).

Speed does not depend on the weights, so without the built-in file (or --checkpoint) the bench
builds the built-in size with random weights and says so. Figures go to a rich table and,
last, one JSON line.
"""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # nothing in this bench may reach a hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
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
from vidora.models.vae import VAE_PRESETS, VideoVAE, latent_frames  # noqa: E402
from vidora.pipelines import GenerationDefaults, TextToVideoPipeline  # noqa: E402
from vidora.pipelines.text_to_video import CLIP_FRAMES, builtin_weights  # noqa: E402

PROMPT = "a red circle moving right on a black background"
SIZE, SECONDS = "64x64", 4
TARGETS = {"warm_s": 3.0, "cold_s": 10.0, "peak_gb": 3.0, "speedup": 2.0}
console = Console()


# ---------------------------------------------------------------------------------------
# Vidora
# ---------------------------------------------------------------------------------------


def load_vidora(checkpoint: str | None) -> tuple[TextToVideoPipeline, str, Path | None]:
    """(pipeline, what was measured, release file or None): the file if there is one, else random weights."""
    if checkpoint is not None:
        return TextToVideoPipeline.from_pretrained(checkpoint), f"checkpoint {checkpoint}", Path(checkpoint)
    try:
        path = builtin_weights()
    except FileNotFoundError:
        path = None
    if path is not None:
        return TextToVideoPipeline.from_pretrained(path), f"built-in model {path.name}", path
    text_encoder = load_text_encoder("minilm")
    torch.manual_seed(0)
    vae = VideoVAE(VAE_PRESETS["small"]())
    dit = DiT(replace(DIT_PRESETS["small"](), latent_channels=vae.cfg.latent_channels, text_dim=text_encoder.dim))
    label = "random weights, built-in size (the built-in file is not there yet)"
    return TextToVideoPipeline(vae, dit, text_encoder, GenerationDefaults()), label, None


# ---------------------------------------------------------------------------------------
# diffusers' WanPipeline, built offline with parts matched to Vidora's
# ---------------------------------------------------------------------------------------


@dataclass
class WanBuild:
    pipe: object
    """The diffusers WanPipeline."""
    facts: dict = field(default_factory=dict)
    """What was built and how it matches, for the table and the JSON."""


def count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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

    dit_cfg, vae_cfg = vidora.dit.cfg, vidora.vae.cfg
    minilm = vidora.text_encoder.model.config

    # Tokenizer: whole words from MiniLM's vocabulary (so a prompt splits into about as many
    # tokens), closed by an end token as T5's is.
    vocab_file = builtin_path() / "vocab.txt"
    vocab = {w: i for i, w in enumerate(vocab_file.read_text(encoding="utf-8").splitlines())}
    tok = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(single="$A [SEP]", special_tokens=[("[SEP]", vocab["[SEP]"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]",
                                        eos_token="[SEP]")

    # Text encoder: a UMT5 encoder of MiniLM-L6's shape (width, depth, heads, FFN, vocabulary).
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(
        vocab_size=len(vocab), d_model=minilm.hidden_size, num_layers=minilm.num_hidden_layers,
        num_heads=minilm.num_attention_heads, d_kv=minilm.hidden_size // minilm.num_attention_heads,
        d_ff=minilm.intermediate_size, feed_forward_proj="gated-gelu", dropout_rate=0.0,
    )).eval()

    # Transformer: the DiT's width, heads, MLP ratio and patch; depth chosen so the parameter
    # counts match (Vidora's per-block adaLN makes its blocks heavier than Wan's).
    def transformer(layers: int) -> WanTransformer3DModel:
        return WanTransformer3DModel(
            patch_size=dit_cfg.patch_size, num_attention_heads=dit_cfg.heads,
            attention_head_dim=dit_cfg.width // dit_cfg.heads, in_channels=vae_cfg.latent_channels,
            out_channels=vae_cfg.latent_channels, text_dim=text_encoder.config.d_model,
            ffn_dim=int(dit_cfg.width * dit_cfg.mlp_ratio), num_layers=layers,
        )

    dit_params = count(vidora.dit)
    with torch.device("meta"):
        layers = min(range(1, 4 * dit_cfg.depth + 1), key=lambda n: abs(count(transformer(n)) / dit_params - 1))
    torch.manual_seed(0)
    wan_transformer = transformer(layers).eval()

    # VAE: Wan's (4x time, 8x space, z = Vidora's latent channels); widths chosen so its decoder
    # (the part text-to-video runs) and encoder have Vidora's parameter counts.
    z = vae_cfg.latent_channels

    def wan_vae(base: int, decoder_base: int) -> AutoencoderKLWan:
        return AutoencoderKLWan(base_dim=base, decoder_base_dim=decoder_base, z_dim=z,
                                latents_mean=[0.0] * z, latents_std=[1.0] * z)

    with torch.device("meta"):
        widths = range(4, 129, 2)
        dec_base = min(widths, key=lambda b: abs(count(wan_vae(8, b).decoder) / count(vidora.vae.decoder) - 1))
        enc_base = min(widths, key=lambda b: abs(count(wan_vae(b, 8).encoder) / count(vidora.vae.encoder) - 1))
    torch.manual_seed(0)
    vae = wan_vae(enc_base, dec_base).eval()

    scheduler_cls = {"euler": FlowMatchEulerDiscreteScheduler, "heun": FlowMatchHeunDiscreteScheduler}
    scheduler = scheduler_cls[vidora.defaults.sampler](shift=vidora.defaults.shift)
    pipe = WanPipeline(tokenizer=tokenizer, text_encoder=text_encoder, vae=vae, scheduler=scheduler,
                       transformer=wan_transformer)
    pipe.set_progress_bar_config(disable=True)
    facts = {
        "transformer": {"layers": layers, "width": dit_cfg.width, "heads": dit_cfg.heads,
                        "ffn": int(dit_cfg.width * dit_cfg.mlp_ratio), "params": count(wan_transformer)},
        "vae": {"base_dim": enc_base, "decoder_base_dim": dec_base, "z_dim": z,
                "encoder_params": count(vae.encoder), "decoder_params": count(vae.decoder)},
        "text_encoder": {"kind": "UMT5EncoderModel (random)", "d_model": text_encoder.config.d_model,
                         "layers": text_encoder.config.num_layers, "params": count(text_encoder)},
        "scheduler": type(scheduler).__name__,
    }
    return WanBuild(pipe, facts)


# ---------------------------------------------------------------------------------------
# Timing tools
# ---------------------------------------------------------------------------------------


class StageClock:
    """Wraps a few methods in place to add up their wall time (and calls) per named stage."""

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
    """One pipeline under test: how to make one video, and the clock on its stages."""

    name: str
    generate: Callable[[int], np.ndarray]
    """seed -> (T, H, W, 3) uint8 frames."""
    clock: StageClock
    runs: list[float] = field(default_factory=list)
    stages: list[dict[str, float]] = field(default_factory=list)
    calls: dict[str, int] = field(default_factory=dict)
    gflops: float = 0.0
    frames_shape: tuple = ()

    def run(self, seed: int) -> None:
        self.clock.reset()
        start = time.perf_counter()
        frames = self.generate(seed)
        self.runs.append(time.perf_counter() - start)
        self.stages.append(dict(self.clock.seconds))
        self.calls = dict(self.clock.calls)
        self.frames_shape = frames.shape

    def warm_up(self) -> None:
        """One untimed run, counting its floating-point work (the count does not change with the seed)."""
        counter = FlopCounterMode(display=False)
        with counter:
            self.frames_shape = self.generate(0).shape
        self.gflops = counter.get_total_flops() / 1e9

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    def median_stage(self, stage: str) -> float:
        return statistics.median(s.get(stage, 0.0) for s in self.stages)


def vidora_contender(pipe: TextToVideoPipeline) -> Contender:
    clock = StageClock()
    clock.wrap(pipe.text_encoder, "encode", "text")
    clock.wrap(pipe.dit, "forward", "denoiser")
    clock.wrap(pipe.vae, "decode", "decode")

    def generate(seed: int) -> np.ndarray:
        return pipe(PROMPT, size=SIZE, seconds=SECONDS, seed=seed).videos[0]

    return Contender("Vidora", generate, clock)


def wan_contender(build: WanBuild, defaults: GenerationDefaults) -> Contender:
    pipe = build.pipe
    clock = StageClock()
    clock.wrap(pipe, "encode_prompt", "text")
    clock.wrap(pipe.transformer, "forward", "denoiser")
    clock.wrap(pipe.vae, "decode", "decode")
    width, height = (int(v) for v in SIZE.split("x"))

    def generate(seed: int) -> np.ndarray:
        out = pipe(prompt=PROMPT, negative_prompt="", height=height, width=width, num_frames=CLIP_FRAMES,
                   num_inference_steps=defaults.steps, guidance_scale=defaults.guidance,
                   generator=torch.Generator().manual_seed(seed), output_type="np",
                   max_sequence_length=build.facts["max_sequence_length"])
        return (out.frames[0] * 255).round().astype(np.uint8)  # (T, H, W, 3) uint8, as Vidora returns

    return Contender("Wan", generate, clock)


def cold_generate(checkpoint: Path | None, out_dir: Path) -> dict:
    """`vidora generate` in a fresh process: wall seconds, peak RSS, and what it wrote."""
    script = Path(sys.executable).with_name("vidora")
    out = out_dir / "cold.mp4"
    cmd = [str(script), "generate", PROMPT, "-o", str(out)]
    if checkpoint is not None:
        cmd += ["--checkpoint", str(checkpoint)]
    log = out_dir / "cold.log"
    with open(log, "wb") as sink:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=sink, stderr=subprocess.STDOUT, env={**os.environ, "HF_HUB_OFFLINE": "1"})
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage: ru_maxrss in KiB on Linux
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n{log.read_text()[-2000:]}")
    from vidora.media import probe_mp4

    info = probe_mp4(out)
    return {"wall_s": wall, "peak_rss_gb": usage.ru_maxrss * 1024 / 1e9, "frames": info.frames,
            "size": f"{info.width}x{info.height}", "command": " ".join(cmd[:2] + [repr(PROMPT)] + cmd[3:])}


# ---------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default=None, help="a release file (default: the built-in one if present)")
    parser.add_argument("--runs", type=int, default=5, help="timed warm runs per pipeline (median reported)")
    parser.add_argument("--skip-wan", action="store_true", help="skip the WanPipeline comparison")
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold `vidora generate` run")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be >= 1")
    load_start = os.getloadavg()
    results: dict = {"bench": "generate", "cpu": platform.processor() or platform.machine(),
                     "cores": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                     "loadavg_start": [round(x, 2) for x in load_start], "prompt": PROMPT, "size": SIZE,
                     "seconds": SECONDS}

    with console.status("loading Vidora"):
        vidora, measured, release = load_vidora(args.checkpoint)
    d = vidora.defaults
    results.update(measured=measured, steps=d.steps, guidance=d.guidance, sampler=d.sampler, shift=d.shift)
    console.print(f"[bold]Vidora:[/] {measured}; {d.steps} {d.sampler} steps, guidance {d.guidance}, "
                  f"shift {d.shift}; torch threads {torch.get_num_threads()}; load average {load_start[0]:.2f}")

    with tempfile.TemporaryDirectory(prefix="vidora-bench-") as tmp:
        # Cold first, while this process sits idle, so the child has the CPU the bench would use.
        if not args.skip_cold:
            # The CLI loads the built-in file by itself; anything else is passed as --checkpoint.
            if release is None:
                release = vidora.save_pretrained(Path(tmp) / "random.safetensors", {"note": "bench, random weights"})
            elif args.checkpoint is None:
                release = None
            with console.status("cold `vidora generate` in a fresh process"):
                results["cold"] = cold_generate(release, Path(tmp))

        contenders = [vidora_contender(vidora)]
        if not args.skip_wan:
            with console.status("building diffusers' WanPipeline"):
                build = build_wan(vidora)
                build.facts["max_sequence_length"] = vidora.text_encoder.max_length
            contenders.append(wan_contender(build, d))
        for c in contenders:
            with console.status(f"warming up {c.name} (and counting its FLOPs)"):
                c.warm_up()
        for i in range(args.runs):  # interleaved, so drifting background load hits both alike
            for c in contenders:
                with console.status(f"{c.name}: timed run {i + 1}/{args.runs}"):
                    c.run(seed=1 + i)

    results["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    report(results, vidora, contenders, None if args.skip_wan else build)


def tokens(shape: tuple, patch: tuple[int, int, int]) -> int:
    """Transformer tokens for a (B, C, F, h, w) latent cut into `patch` patches."""
    f, h, w = shape[2:]
    return (f // patch[0]) * (h // patch[1]) * (w // patch[2])


def report(results: dict, vidora: TextToVideoPipeline, contenders: list[Contender], build: WanBuild | None) -> None:
    v = contenders[0]
    expected_latent = (vidora.vae.cfg.latent_channels, latent_frames(CLIP_FRAMES), 8, 8)
    results["vidora"] = {
        "warm_median_s": v.median, "warm_runs_s": v.runs, "gflops_per_video": v.gflops,
        "stages_median_s": {s: v.median_stage(s) for s in ("text", "denoiser", "decode")},
        "denoiser_calls": v.calls.get("denoiser"), "frames": list(v.frames_shape),
        "dit_params": count(vidora.dit), "vae_decoder_params": count(vidora.vae.decoder),
        "vae_encoder_params": count(vidora.vae.encoder),
        "text_encoder": {"kind": vidora.text_encoder.name, "params": count(vidora.text_encoder.model)},
        "latent": list(expected_latent),
        "tokens": tokens(v.clock.shapes["denoiser"], vidora.dit.cfg.patch_size),
    }
    ok = {"warm": v.median <= TARGETS["warm_s"]}
    if "cold" in results:
        ok["cold"] = results["cold"]["wall_s"] <= TARGETS["cold_s"]
        ok["memory"] = results["cold"]["peak_rss_gb"] <= TARGETS["peak_gb"]
    if build is not None:
        w = contenders[1]
        patch = build.pipe.transformer.config.patch_size
        results["wan"] = {
            **build.facts, "warm_median_s": w.median, "warm_runs_s": w.runs, "gflops_per_video": w.gflops,
            "stages_median_s": {s: w.median_stage(s) for s in ("text", "denoiser", "decode")},
            "denoiser_calls": w.calls.get("denoiser"), "frames": list(w.frames_shape),
            "latent": list(w.clock.shapes["denoiser"][1:]), "tokens": tokens(w.clock.shapes["denoiser"], patch),
        }
        results["param_ratio_wan_over_vidora"] = build.facts["transformer"]["params"] / results["vidora"]["dit_params"]
        results["speedup"] = w.median / v.median
        ok["speedup"] = results["speedup"] >= TARGETS["speedup"]
        ok["matched"] = (abs(results["param_ratio_wan_over_vidora"] - 1) <= 0.10
                         and results["wan"]["tokens"] == results["vidora"]["tokens"])
    results["targets"] = TARGETS
    results["ok"] = ok

    table = Table(title=f"vidora generate bench — {results['measured']}", show_lines=False)
    table.add_column("figure")
    table.add_column("Vidora", justify="right")
    table.add_column("Wan (diffusers)", justify="right")
    table.add_column("target", justify="right")
    mark = {True: "[green]ok[/]", False: "[red]MISSED[/]"}
    wan = results.get("wan", {})

    def row(name: str, vid: str, wn: str = "", target: str = "") -> None:
        table.add_row(name, vid, wn, target)

    row("warm 4 s 64x64, median", f"{v.median:.2f} s", f"{wan['warm_median_s']:.2f} s" if wan else "",
        f"<= 3 s {mark[ok['warm']]}")
    row("  runs", " ".join(f"{t:.2f}" for t in v.runs), " ".join(f"{t:.2f}" for t in wan.get("warm_runs_s", [])))
    for stage in ("text", "denoiser", "decode"):
        row(f"  {stage}, median", f"{results['vidora']['stages_median_s'][stage]:.2f} s",
            f"{wan['stages_median_s'][stage]:.2f} s" if wan else "")
    if wan:
        row("speedup (Wan / Vidora)", f"{results['speedup']:.2f}x", "", f">= 2x {mark[ok['speedup']]}")
    if "cold" in results:
        cold = results["cold"]
        row("cold `vidora generate`", f"{cold['wall_s']:.2f} s", "", f"<= 10 s {mark[ok['cold']]}")
        row("  peak RSS", f"{cold['peak_rss_gb']:.2f} GB", "", f"<= 3 GB {mark[ok['memory']]}")
    row("GFLOPs per video", f"{v.gflops:.1f}", f"{wan['gflops_per_video']:.1f}" if wan else "")
    row("denoiser params", f"{results['vidora']['dit_params'] / 1e6:.2f} M",
        f"{wan['transformer']['params'] / 1e6:.2f} M" if wan else "",
        f"ratio {results['param_ratio_wan_over_vidora']:.3f}" if wan else "")
    if wan:
        t = wan["transformer"]
        row("  shape", f"{vidora.dit.cfg.depth} x {vidora.dit.cfg.width}, {vidora.dit.cfg.heads} heads",
            f"{t['layers']} x {t['width']}, {t['heads']} heads")
    row("denoiser calls (steps x CFG)", str(results["vidora"]["denoiser_calls"]) + " (batch 2)",
        f"{wan['denoiser_calls']} (batch 1)" if wan else "")
    row("latent (C, F, h, w) -> tokens", f"{tuple(results['vidora']['latent'])} -> {results['vidora']['tokens']}",
        f"{tuple(wan['latent'])} -> {wan['tokens']}" if wan else "")
    row("VAE decoder params", f"{results['vidora']['vae_decoder_params'] / 1e6:.2f} M",
        f"{wan['vae']['decoder_params'] / 1e6:.2f} M" if wan else "")
    row("text encoder", f"MiniLM-L6 {results['vidora']['text_encoder']['params'] / 1e6:.1f} M",
        f"UMT5 {wan['text_encoder']['d_model']}x{wan['text_encoder']['layers']} "
        f"{wan['text_encoder']['params'] / 1e6:.1f} M, {wan['max_sequence_length']} tokens" if wan else "")
    row("frames out", str(tuple(v.frames_shape)), str(tuple(wan["frames"])) if wan else "")
    console.print(table)
    console.print(f"torch threads {results['threads']} (both); load average at start "
                  f"{results['loadavg_start']}, at end {results['loadavg_end']} on {results['cores']} cores")
    print(json.dumps(results, default=float))


if __name__ == "__main__":
    main()
