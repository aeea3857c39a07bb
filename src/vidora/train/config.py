"""Training configs: small frozen dataclasses, one docstring per field (nanoGPT's GPTConfig style).

A run is configured by its dataclass defaults, then a YAML file of overrides, then `key=value`
overrides from the command line. The resolved config is saved inside every checkpoint, so a
checkpoint always says how it was made.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml


@dataclass(frozen=True)
class DataConfig:
    source: str = "shapes"
    """'shapes' (Shapes World, rendered on the fly) or the path of a dataset folder (manifest)."""
    split: str = "train"
    """Shapes World split to train on."""
    sizes: tuple[str, ...] = ("64x64", "96x64", "64x96")
    """Size buckets, WIDTHxHEIGHT; each batch holds one size."""
    frames: tuple[int, ...] = (1, 9, 17, 33)
    """Duration buckets in frames (1 + 4k; 1 is an image); each batch holds one duration."""
    frame_weights: tuple[float, ...] = (0.15, 0.35, 0.2, 0.3)
    """How often each duration bucket is drawn."""
    seed: int = 0
    """Seed of the data order."""


@dataclass(frozen=True)
class VAETrainConfig:
    run_dir: str = "runs/vae"
    """Where checkpoints, logs and the loss plot go."""
    preset: str = "small"
    """Model size, a key of vidora.models.vae.VAE_PRESETS."""
    init_from: str = ""
    """A model release (e.g. the built-in one) or a vae.safetensors whose VAE starts a fresh run;
    '' for random."""
    refine_width: int | None = None
    """The decoder's full-resolution stage (`VAEConfig.refine_width`): None keeps the preset's or
    `init_from`'s; a width adds one to a start that lacks it (it begins as the identity, so
    `train_part=decoder` can add it to a VAE a DiT was trained on)."""
    train_part: str = "all"
    """'all', or 'decoder': fine-tune the decoder alone on the frozen encoder's mean latents, so
    a DiT already trained on this VAE's latents stays valid (needs `init_from`)."""
    steps: int = 4000
    """Optimizer steps in all."""
    batch_size: int = 8
    """Clips per step (per process)."""
    lr: float = 5e-4
    """Peak AdamW learning rate."""
    warmup: int = 200
    """Linear warm-up steps, then cosine decay to 10% of the peak."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    anchor_weight: float = 0.0
    """Weight of an MSE between the encoder's mean and the starting VAE's (needs `init_from`):
    the whole VAE trains but its latent space stays near the start's, so a DiT trained on those
    latents stays valid (or adapts to the new ones in a short fine-tune). Started from a release,
    the run also writes `model.safetensors`: the release with this VAE."""
    kl_weight: float = 1e-6
    """Weight of the KL term: small, so the latent keeps detail but stays bounded."""
    l1_weight: float = 1.0
    """Weight of the L1 reconstruction term (sharper edges than MSE alone)."""
    mse_weight: float = 1.0
    """Weight of the MSE reconstruction term."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    foreground_weight: float = 0.0
    """Extra reconstruction weight on pixels unlike the frame's corner colour (Shapes World's
    objects are a few percent of the pixels; the built-in recipe uses 5)."""
    crop: int = 32
    """Side of the random square crop trained on (0: whole frames). The VAE is convolutional, so
    crops teach it the same thing for a fraction of the compute."""
    log_every: int = 25
    """Steps between log lines."""
    save_every: int = 250
    """Steps between resumable checkpoints."""
    autocast: str = "auto"
    """'bf16', 'off', or 'auto' (bf16 only where the CPU or GPU computes it natively)."""
    data: DataConfig = DataConfig(frames=(1, 5, 9, 17), frame_weights=(0.2, 0.3, 0.4, 0.1))


@dataclass(frozen=True)
class DiTTrainConfig:
    run_dir: str = "runs/dit"
    """Where checkpoints, logs and the loss plot go."""
    vae_checkpoint: str = "runs/vae/vae.safetensors"
    """The trained VAE (frozen here) whose latents the DiT learns."""
    text_encoder: str = "minilm"
    """'minilm' (the packaged MiniLM-L6) or the local path of a Hugging Face encoder."""
    preset: str = "small"
    """Model size, a key of vidora.models.dit.DIT_PRESETS."""
    init_from: str = ""
    """A model release (e.g. the built-in one) whose DiT starts a fresh run; '' for random."""
    refine_width: int = 0
    """Channels of the DiT's convolutional head after its patch layer (`DiTConfig.refine_width`,
    `VelocityRefiner`); 0: none. Added to an `init_from` that lacks it, it starts as the
    identity."""
    pool_queries: int = 0
    """Learned queries reading the prompt into the DiT's global condition (`DiTConfig.pool_queries`,
    `PromptPool`); 0: none. Added to an `init_from` that lacks it, it starts adding nothing."""
    part_lr_scale: float = 1.0
    """Learning-rate multiplier for the DiT's optional parts (`OPTIONAL_PARTS`: the refine head,
    the prompt pool). A part added to a trained DiT starts at zero; at the rest's learning rate a
    short run leaves it too small to matter (MODEL.md, "Tried, not released")."""
    train_part: str = "all"
    """'all', or 'refine': train the convolutional head alone (needs `refine_width` and
    `init_from`); the rest of the DiT stays as `init_from` has it and runs without gradient, so
    a step costs about a forward pass."""
    steps: int = 20000
    """Optimizer steps in all."""
    batch_size: int = 32
    """Clips per step (per process)."""
    lr: float = 3e-4
    """Peak AdamW learning rate."""
    warmup: int = 500
    """Linear warm-up steps, then cosine decay to 10% of the peak."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    grad_clip: float = 1.0
    """Gradient-norm clip."""
    ema_decay: float = 0.999
    """Decay of the weight EMA that is released."""
    text_dropout: float = 0.1
    """Share of captions replaced by the empty prompt, for classifier-free guidance."""
    cond_prob: float = 0.3
    """Share of clips whose first latent frames are given clean (image-to-video, extension)."""
    cache_clips: int = 6000
    """Clips encoded once into the latent cache (spread over the sizes)."""
    continuation_share: float = 0.0
    """Share of clips that are continuations, trained as extensions (Shapes World runs only):
    a scene's motion carried on past its 32 frames, from where the pipeline's second or third
    chunk starts (`vidora.train.dit.CONTINUATION_STARTS`), its first 2 latent frames (the
    previous chunk's last 5 frames) given. A Shapes World clip keeps its objects inside the
    frame for all 32 frames, so without these an extension has never seen an object leave: at
    the edge the DiT draws it back inside, a jump at the seam. 0: off."""
    continuation_clips: int = 2000
    """Continuation clips encoded once into their own latent cache (`continuations.safetensors`
    beside the latent cache), when `continuation_share` is on."""
    cache_workers: int = 0
    """Processes that render the cache's Shapes World clips (0: this one). On a GPU machine,
    rendering on one core is most of a cache's time; there, give it the cores."""
    timestep_shift: float = 1.0
    """Shift of the logit-normal timestep distribution toward noise (> 1: more noise)."""
    foreground_weight: float = 0.0
    """Extra flow-loss weight on latent positions unlike their frame's background (see
    `latent_foreground`): Shapes World's objects are a few percent of the latent, so without it
    the loss is mostly flat canvas. 0: every position counts the same."""
    text_noise: float = 0.0
    """Std of Gaussian noise added to the text encoder's token states in training (MiniLM's
    have a per-dimension std of about 0.3). Training on noisy inputs is a ridge penalty in
    another form (Bishop, 1995): the DiT learns a smoother readout of the states, so a word it
    never saw, whose states lie near a trained synonym's, is read like it. 0: off."""
    text_token_dropout: float = 0.0
    """Share of each caption's tokens (all but the first, [CLS]) hidden from the DiT in
    training, each on its own draw: it learns to draw from what is left when a word is missing
    or one it cannot read, where otherwise every caption names everything. 0: off."""
    unknown_background: float = 0.0
    """Share of Shapes World captions whose background word is replaced by a word the captions
    never use (`vidora.world.captions.stand_in_words`, drawn from the text encoder's
    vocabulary), the clip unchanged. Trained only on the words it knows, the DiT paints a
    canvas of no Shapes World colour when a prompt names the background otherwise (the
    held-out wording's 'slate' alone raises its flow loss 3.4 times); this teaches it to draw
    one of the three canvases and the objects asked for. 0: off."""
    shape_weight: float = 0.0
    """Extra flow-loss weight on the latent cells where the clip's shapes show (Shapes World
    runs only): each clip is rendered again with every object as another shape, and a cell
    weighs up to 1 + shape_weight by how far its latent moved (`vidora.train.dit.
    add_shape_cells`; built once beside the latent cache, in `cache_workers` processes). A
    square differs from a circle in a few cells, so the plain loss barely charges a square drawn
    round (on the built-in model, 4 drew more of the objects and no more squares: MODEL.md,
    v13). 0: off."""
    attribute_weight: float = 0.0
    """Weight of the attribute loss (Shapes World runs only): a linear head on the tokens after
    `attribute_block` blocks is charged, by cross-entropy, for naming the colour, shape, motion
    and size of the object each token shows (`vidora.models.dit.AttributeHead`, labels from
    `vidora.train.attributes`). At high noise only the prompt can say what an object is, so
    this asks the DiT to carry the prompt's words to the tokens that draw them. The head is
    for training; sampling never reads it. 0: off."""
    attribute_block: int = 2
    """Blocks (of the preset's depth) below the attribute head."""
    grounding_weight: float = 0.0
    """Weight of the grounding loss (Shapes World runs only): every block's cross-attention is
    charged for the share of attention each word of an object's phrase ("a small red disc
    moving right") gets from tokens outside that object (`vidora.train.grounding`). Two-object
    prompts need each object to read its own words; v16 reads them as often for the other
    object (MODEL.md, "Two objects: which is which"). Not with `attribute_weight`. 0: off."""
    mean_dropout: float = 0.0
    """Share of training clips whose condition leaves out the mean of the prompt's token states
    (`DiT.forward`'s `keep_mean`), so that the words must reach the DiT through cross-attention,
    token by token. One mean cannot say which object a word is for: v16 draws a two-object scene
    with one motion (MODEL.md, "One motion for the scene"). 0: off."""
    shape_contrast: float = 0.0
    """Weight of a contrastive term (Shapes World runs only): each clip's flow loss is taken
    again with its caption naming one object's shape wrongly, every other word the same, and
    the term charges where that loss is not `shape_contrast_margin` above the true caption's
    (relative). The plain loss barely tells a square's flow from a circle's, which differ in a
    few latent cells; this asks the DiT for the difference (on the built-in model it raised
    the shape gap and drew no more squares: MODEL.md). 0: off; on, a step costs a second pass
    of the DiT."""
    shape_contrast_margin: float = 1.0
    """The rise a wrong shape word should cost, in units of the batch's mean flow loss (1: as
    much again; the word gaps report such a rise in percent, `gap_shape`)."""
    shape_contrast_max_t: float = 0.5
    """The contrast is charged on clips at times up to this (0 is noise, 1 the data): where the
    outline is still being decided, not where the noisy clip already shows it."""
    shape_contrast_wrong_grad: bool = True
    """Whether the contrast trains through the wrong caption's loss as well as the true one's.
    On (the first form), the DiT can meet the margin by predicting worse under a wrong word
    rather than better under the right one, and does (MODEL.md, "Tried, not released"); off,
    the wrong caption's loss is measured without gradient (a no-grad pass, cheaper), so the
    term only lowers the true caption's loss on the clips whose shape word it does not use:
    a per-clip weight on the plain loss."""
    val_clips: int = 64
    """Held-out clips whose flow loss (fixed noise and times) is logged as `val_loss`; 0: off."""
    word_gap_clips: int = 48
    """Single-object held-out clips whose word gaps (`vidora.train.validation.WordGaps`: how
    much the loss rises when the prompt names a wrong colour, shape, size or motion) are logged
    with `val_loss` as `gap_colour`, ..., and again in the held-out wording, whose words no
    training caption uses, as `gap_heldout_colour`, ...; Shapes World runs only; 0: off."""
    val_every: int = 500
    """Steps between measurements of `val_loss` and the word gaps (also at the first and last
    step)."""
    val_source: str = ""
    """Where held-out clips come from: '' for Shapes World's eval-seen split on a Shapes World
    run and none for a dataset folder, or the path of a dataset folder kept out of training."""
    log_every: int = 25
    """Steps between log lines."""
    save_every: int = 500
    """Steps between resumable checkpoints."""
    autocast: str = "auto"
    """'bf16', 'off', or 'auto' (bf16 only where the CPU or GPU computes it natively)."""
    data: DataConfig = DataConfig(frames=(33,), frame_weights=(1.0,))


C = TypeVar("C")


def load_config(
    cls: type[C], path: str | Path | None = None, overrides: list[str] | None = None
) -> C:
    """Defaults, then the YAML file at `path`, then `key=value` overrides (`data.seed=3`)."""
    values: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text()
        loaded = yaml.safe_load(text) or {}
        if not isinstance(loaded, dict):
            raise ValueError(
                f"{path} must hold a mapping of config fields, not {type(loaded).__name__}"
            )
        values = loaded
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} must look like key=value")
        target = values
        *parents, leaf = key.split(".")
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = yaml.safe_load(raw)
    return _build(cls, values)


def _build(cls: type[C], values: dict[str, Any]) -> C:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(
            f"unknown {cls.__name__} field(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(fields)}"
        )
    kwargs: dict[str, Any] = {}
    defaults = cls()
    for name, value in values.items():
        default = getattr(defaults, name)
        if dataclasses.is_dataclass(default):
            value = _build(type(default), {**dataclasses.asdict(default), **(value or {})})
        elif isinstance(default, tuple):
            value = tuple(value)
        kwargs[name] = value
    return cls(**kwargs)


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-able dict of a (nested) config dataclass, for checkpoints."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))
