"""Can a text encoder carry Shapes World's held-out wording? A probe of its token states.

The DiT reads a prompt only through the text encoder's token states, and eval-wording asks it to
follow words and sentences no training caption uses ("an orb ascending; everything behind it is
slate"). Whether that is possible at all is the encoder's doing: it must put a held-out phrase's
states near those of the training phrases that mean the same. This probe measures it without
any DiT. For each attribute (shape, motion, background, size) a ridge readout is fitted on the
states of the training wording's phrases, in training captions, and names the concept of each
held-out phrase, in held-out captions. A readout that does well says the information is there
for a DiT to read; it is a yardstick, not a bound.

The ridge penalty is chosen by leaving out each training synonym in turn and naming it from the
others, so the held-out wording chooses nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch

from vidora.models.text_encoder import TextEncoder
from vidora.world.captions import (
    BACKGROUND_WORDS,
    MOTION_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    Wording,
    write_caption,
)
from vidora.world.scene import Scene, sample_scene

PENALTIES: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
"""Ridge penalties the synonym-out validation chooses from."""

ENCODE_BATCH = 64
"""Captions encoded together."""


def _motion_words() -> dict[str, dict[str, tuple[str, ...]]]:
    """Motion phrases per wording and concept: participles and finite verbs together."""
    return {
        wording: {motion: (*participles, *finites) for motion, (participles, finites) in d.items()}
        for wording, d in MOTION_PHRASES.items()
    }


PHRASES: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "shape": SHAPE_WORDS,
    "motion": _motion_words(),
    "background": BACKGROUND_WORDS,
    "size": SIZE_WORDS,
}
"""attribute -> wording -> concept -> the phrases that name it."""


@dataclass(frozen=True)
class Example:
    """One attribute's phrase in one caption: its concept, the phrase, and its mean state (D,)."""

    concept: str
    phrase: str
    state: torch.Tensor


def named_phrase(caption: str, phrases: tuple[str, ...]) -> re.Match | None:
    """Where the caption uses the longest of `phrases` as whole words (case aside), or None."""
    for phrase in sorted(phrases, key=len, reverse=True):
        match = re.search(rf"\b{re.escape(phrase)}\b", caption, flags=re.IGNORECASE)
        if match:
            return match
    return None


def phrase_tokens(encoder: TextEncoder, caption: str, match: re.Match) -> slice:
    """The positions of the phrase's tokens among the caption's (as `encode` numbers them)."""
    ids = encoder.token_ids(caption)
    plain = encoder.token_ids(caption, special_tokens=False)
    lead = next(k for k in range(len(ids) - len(plain) + 1) if ids[k : k + len(plain)] == plain)
    start = len(encoder.token_ids(caption[: match.start()].rstrip(), special_tokens=False))
    through = encoder.token_ids(caption[: match.end()], special_tokens=False)
    if plain[: len(through)] != through:
        raise ValueError(f"{encoder.name}: {caption!r} does not split at {match.group()!r}")
    return slice(lead + start, lead + len(through))


def examples(
    encoder: TextEncoder, wording: Wording, count: int, seed: int
) -> dict[str, list[Example]]:
    """Per attribute, the phrase states of `count` one-object captions in `wording`."""
    rng = np.random.default_rng(seed)
    scenes: list[Scene] = []
    while len(scenes) < count:
        scene = sample_scene(rng, "64x64")
        if len(scene.objects) == 1:
            scenes.append(scene)
    captions = [write_caption(scene, rng, wording) for scene in scenes]
    found: dict[str, list[Example]] = {attribute: [] for attribute in PHRASES}
    for i in range(0, count, ENCODE_BATCH):
        batch = captions[i : i + ENCODE_BATCH]
        states, _ = encoder.encode(batch)  # (B, L, D)
        for caption, scene, caption_states in zip(
            batch, scenes[i : i + ENCODE_BATCH], states.cpu(), strict=True
        ):
            (obj,) = scene.objects
            for attribute, words in PHRASES.items():
                concept = scene.background if attribute == "background" else getattr(obj, attribute)
                match = named_phrase(caption, words[wording][concept])
                if match is not None:  # size words are optional
                    state = caption_states[phrase_tokens(encoder, caption, match)].mean(0)  # (D,)
                    found[attribute].append(Example(concept, match.group().lower(), state))
    return found


def ridge_readout(
    x: torch.Tensor, concepts: list[str], penalty: float
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Ridge regression of one-hot concepts on features x (N, D): (weights, mean, labels)."""
    labels = sorted(set(concepts))
    y = torch.tensor([labels.index(c) for c in concepts])
    mean = x.mean(0)
    centred = (x - mean).double()  # (N, D)
    targets = torch.nn.functional.one_hot(y, len(labels)).double()  # (N, K)
    gram = centred.T @ centred + penalty * torch.eye(x.shape[1], dtype=torch.float64)
    return torch.linalg.solve(gram, centred.T @ targets), mean, labels  # (D, K)


def read(
    weights: torch.Tensor, mean: torch.Tensor, labels: list[str], x: torch.Tensor
) -> list[str]:
    """The concept the readout names for each row of x (N, D)."""
    scores = (x - mean).double() @ weights  # (N, K)
    return [labels[k] for k in scores.argmax(1).tolist()]


def synonym_out_accuracy(train: list[Example], penalty: float) -> float:
    """Each training phrase named by a readout fitted on the other phrases' examples (concepts
    with one phrase are left out: with it gone, nothing of theirs is left to learn from)."""
    phrases = {c: {e.phrase for e in train if e.concept == c} for c in {e.concept for e in train}}
    learnable = [e for e in train if len(phrases[e.concept]) > 1]
    right = 0
    for phrase in {e.phrase for e in learnable}:
        fit = [e for e in train if e.phrase != phrase]
        test = [e for e in train if e.phrase == phrase]
        readout = ridge_readout(
            torch.stack([e.state for e in fit]), [e.concept for e in fit], penalty
        )
        named = read(*readout, torch.stack([e.state for e in test]))
        right += sum(n == e.concept for n, e in zip(named, test, strict=True))
    return right / max(len(learnable), 1)


def probe_attribute(train: list[Example], heldout: list[Example]) -> dict[str, float]:
    """Choose the penalty on the training wording, then name the held-out phrases' concepts."""
    scored = [(synonym_out_accuracy(train, p), p) for p in PENALTIES]
    best_accuracy, penalty = max(scored, key=lambda s: (s[0], s[1]))  # ties: the larger penalty
    readout = ridge_readout(
        torch.stack([e.state for e in train]), [e.concept for e in train], penalty
    )
    named = read(*readout, torch.stack([e.state for e in heldout]))
    right = sum(n == e.concept for n, e in zip(named, heldout, strict=True))
    return {
        "heldout_accuracy": right / len(heldout),
        "synonym_out_accuracy": best_accuracy,
        "penalty": penalty,
        "chance": 1 / len({e.concept for e in train}),
        "heldout_examples": len(heldout),
    }


@torch.inference_mode()
def wording_probe(encoder: TextEncoder, count: int = 400, seed: int = 0) -> dict[str, dict]:
    """Per attribute, how well a ridge readout of training phrases names held-out phrases."""
    train = examples(encoder, "train", count, seed)
    heldout = examples(encoder, "heldout", count, seed + 1)
    return {a: probe_attribute(train[a], heldout[a]) for a in PHRASES}
