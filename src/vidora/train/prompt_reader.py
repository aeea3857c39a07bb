"""Fit the prompt reader (`vidora.models.prompt_reader`) on Shapes World's training captions.

Every token of a few thousand training captions is labelled with what its phrase names (the
training wording's tables say which words those are: "disc" -> shape:circle, "drifting
leftward" -> motion:left; every other token is "other"), and one ridge map is fitted from the
frozen text encoder's token states to those labels. Only the training wording is used: the ridge
penalty is chosen by leaving out each training synonym in turn and reading it from the others
(as `vidora eval-text` does), so the held-out wording chooses nothing and is never seen.

An object's shape, motion and size are named by a second kind of readout: every training phrase
of the kind set in each one-object training template (`concept_templates`), its words' states
there mapped to its concept. The sentences are the training wording's own, filled in turn, so
no sentence was written with the held-out wording in mind.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vidora.models.prompt_reader import (
    KINDS,
    PromptReader,
    in_context,
    template_states,
    with_bias,
)
from vidora.models.text_encoder import TextEncoder
from vidora.world.captions import (
    BACKGROUND_NOUNS,
    BACKGROUND_WORDS,
    MOTION_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    TEMPLATES,
    fill_template,
    write_caption,
)
from vidora.world.scene import Scene, sample_scene
from vidora.world.spec import COLOURS

PENALTIES: tuple[float, ...] = (1.0, 10.0, 100.0, 1000.0, 10000.0, 100000.0)
"""Ridge penalties the synonym-out validation chooses from."""

TEMPLATE_PENALTIES: tuple[float, ...] = (0.001, 0.01, 0.1, 1.0, 10.0)
"""The same for the templated readouts, whose rows are unit states (one per phrase and
template, not thousands of tokens), so the useful penalties are smaller."""

TEMPLATED_KINDS: tuple[str, ...] = ("shape", "motion", "size")
"""The kinds the reader names from their words re-encoded in training sentences (an object's
own words); colours and backgrounds are named in the prompt (`PromptReader`)."""

KIND_CONTEXT = "neighbours"
"""What the kind readout reads of each token (`vidora.models.prompt_reader.KIND_CONTEXTS`):
its state beside its neighbours'. Its own state alone won the frames-out and left-out-synonym
checks by their mean and lost held-out wording (MODEL.md, "Tried, not released")."""

FALLBACK_CONTEXT: str | None = "own"
"""What a second kind readout, read with where the first leaves a prompt unread, reads of each
token: its own state alone reads new sentence frames (the frames-out check) where the
neighbours do not (MODEL.md, "v20")."""

FRAMES_OUT = {1: 4, 2: 2}
"""The frames-out check leaves out the last this many training templates per object count."""

ENCODE_BATCH = 64
"""Captions encoded together."""

Templates = Mapping[int, tuple[str, ...]]
"""Caption templates by object count (`vidora.world.captions.TEMPLATES["train"]`)."""


def concept_templates(kind: str, templates: Templates | None = None) -> list[str]:
    """The one-object training templates (or `templates`'), each with a {} where a phrase of
    `kind` goes and the other fields filled in (colours, shapes, motions and backgrounds in
    turn): sentences in the training wording, so no sentence is written with held-out wording
    in mind."""
    slot = "\0"  # the phrase's place, a {} once filled (the templates' own fields use braces)
    shapes = [words[0] for words in SHAPE_WORDS["train"].values()]
    motions = list(MOTION_PHRASES["train"].values())
    backgrounds = [words[0] for words in BACKGROUND_WORDS["train"].values()]
    colours = list(COLOURS)
    sentences = []
    for n, template in enumerate((templates or TEMPLATES["train"])[1]):
        (participle, *_), (finite, *_) = motions[n % len(motions)]
        colour, shape = colours[n % len(colours)], shapes[n % len(shapes)]
        fields = {
            "obj": {"shape": f"{colour} {slot}", "size": f"{slot} {colour} {shape}"}.get(
                kind, f"{colour} {shape}"
            ),
            "mp": slot if kind == "motion" else participle,
            "mf": slot if kind == "motion" else finite,
            "bg": backgrounds[n % len(backgrounds)],
            "bn": BACKGROUND_NOUNS[n % len(BACKGROUND_NOUNS)],
        }
        sentences.append(fill_template(template, fields).replace(slot, "{}"))
    return sentences


def training_phrases() -> dict[str, str]:
    """Every training-wording phrase -> its label ("drifting leftward" -> "motion:left")."""
    table: dict[str, str] = {colour: f"colour:{colour}" for colour in COLOURS}
    for kind, words in (
        ("shape", SHAPE_WORDS),
        ("size", SIZE_WORDS),
        ("background", BACKGROUND_WORDS),
    ):
        for concept, phrases in words["train"].items():
            table.update(dict.fromkeys(phrases, f"{kind}:{concept}"))
    for motion, (participles, finites) in MOTION_PHRASES["train"].items():
        table.update(dict.fromkeys((*participles, *finites), f"motion:{motion}"))
    return table


def written_phrases() -> dict[str, str]:
    """The phrase the reader writes for each label: each concept's first training word."""
    written = {f"shape:{c}": p[0] for c, p in SHAPE_WORDS["train"].items()}
    written |= {f"size:{c}": p[0] for c, p in SIZE_WORDS["train"].items()}
    written |= {f"motion:{m}": forms[0][0] for m, forms in MOTION_PHRASES["train"].items()}
    written |= {f"background:{c}": p[0] for c, p in BACKGROUND_WORDS["train"].items()}
    return written


@dataclass(frozen=True)
class LabelledTokens:
    """Token states of training captions, each token's kind (0: other, k: KINDS[k - 1]), and
    for the tokens of a training phrase, that phrase and which occurrence of it (a number
    shared by the occurrence's tokens; -1 for "other")."""

    states: torch.Tensor
    """(N, D)"""
    contexts: torch.Tensor
    """(N, 3D): each state beside its neighbours' (`in_context`)"""
    kinds: torch.Tensor
    """(N,) int64"""
    phrases: list[str]
    occurrence: torch.Tensor
    """(N,) int64"""


def label_captions(captions: list[str], table: dict[str, str]) -> list[list[tuple[int, int, str]]]:
    """Per caption, the character spans of its training phrases and the phrase, left to right
    (the longest phrase wins where two start at one place)."""
    pattern = re.compile(
        r"\b(" + "|".join(re.escape(p) for p in sorted(table, key=len, reverse=True)) + r")\b",
        flags=re.IGNORECASE,
    )
    return [
        [(m.start(), m.end(), m.group().lower()) for m in pattern.finditer(c)] for c in captions
    ]


def training_captions(
    count: int,
    seed: int,
    without: frozenset[str] = frozenset(),
    using: frozenset[str] | None = None,
    templates: Templates | None = None,
) -> list[tuple[str, Scene]]:
    """`count` training captions and their scenes (one and two objects, as training draws
    them, in the training templates or `templates`), skipping any caption that uses a phrase
    of `without` and, given `using`, any that uses none of its phrases."""
    rng = np.random.default_rng(seed)
    table = training_phrases()
    out: list[tuple[str, Scene]] = []
    while len(out) < count:
        scene = sample_scene(rng, "64x64")
        caption = write_caption(scene, rng, "train", templates=templates)
        (spans,) = label_captions([caption], table)
        used = {phrase for _, _, phrase in spans}
        if not used & without and (using is None or used & using):
            out.append((caption, scene))
    return out


@torch.inference_mode()
def labelled_tokens(encoder: TextEncoder, captions: list[str]) -> LabelledTokens:
    """The token states of training captions, each labelled with what its phrase names."""
    table = training_phrases()
    spans = label_captions(captions, table)
    states, contexts, kinds, phrases, occurrence = [], [], [], [], []
    occurrences = 0
    for i in range(0, len(captions), ENCODE_BATCH):
        batch = captions[i : i + ENCODE_BATCH]
        batch_states, _ = encoder.encode(batch)  # (B, L, D)
        for caption_states, offsets, caption_spans in zip(
            batch_states.cpu(),
            encoder.token_offsets(batch),
            spans[i : i + ENCODE_BATCH],
            strict=True,
        ):
            length = len(offsets)
            context = in_context(caption_states[:length])  # (L, 3D)
            for state, near, (start, end) in zip(caption_states, context, offsets, strict=False):
                if start == end:  # [CLS], [SEP], padding
                    continue
                where = next(
                    (k for k, (a, b, _) in enumerate(caption_spans) if a <= start and end <= b),
                    None,
                )
                states.append(state)
                contexts.append(near)
                if where is None:
                    kinds.append(0)
                    phrases.append("")
                    occurrence.append(-1)
                    continue
                phrase = caption_spans[where][2]
                kinds.append(1 + KINDS.index(table[phrase].split(":")[0]))
                phrases.append(phrase)
                occurrence.append(occurrences + where)
            occurrences += len(caption_spans)
    return LabelledTokens(
        torch.stack(states),
        torch.stack(contexts),
        torch.tensor(kinds),
        phrases,
        torch.tensor(occurrence),
    )


def _design(states: torch.Tensor) -> torch.Tensor:
    """States (N, D) with a column of ones for the bias, as the reader reads them: (N, D + 1),
    float64 for the solve."""
    return with_bias(states).double()


def _solve(gram: torch.Tensor, cross: torch.Tensor, penalty: float) -> torch.Tensor:
    """Ridge weights (D + 1, K) from X'X and X'Y, the bias unpenalised."""
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    eye[-1, -1] = 0.0
    return torch.linalg.solve(gram + penalty * eye, cross)


def _synonyms(kind: str) -> dict[str, str]:
    """The kind's training phrases -> concept, only for concepts with two phrases or more
    (with its only phrase left out, a concept has nothing left to be learned from)."""
    table = {
        p: label.split(":")[1]
        for p, label in training_phrases().items()
        if label.startswith(kind + ":")
    }
    count = {c: sum(v == c for v in table.values()) for c in set(table.values())}
    return {p: c for p, c in table.items() if count[c] > 1}


def _synonym_out(
    x: torch.Tensor,
    y: torch.Tensor,
    groups: list[torch.Tensor],
    penalty: float,
    one_reading: bool = False,
) -> float:
    """Each group of rows (one training phrase's) read by a ridge fitted without them: the
    share of rows whose argmax is their target's, or with `one_reading` (a phrase's rows are
    its templates, read together), the share of groups whose mean score's argmax is."""
    gram, cross = x.T @ x, x.T @ y
    right = total = 0
    for rows in groups:
        xp, yp = x[rows], y[rows]
        weights = _solve(gram - xp.T @ xp, cross - xp.T @ yp, penalty)
        scores = xp @ weights  # (rows, K)
        if one_reading:
            right += int(scores.mean(0).argmax() == yp[0].argmax())
            total += 1
        else:
            right += int((scores.argmax(1) == yp.argmax(1)).sum())
            total += len(rows)
    return right / max(total, 1)


def _phrase_means(data: LabelledTokens, kind: str) -> tuple[torch.Tensor, list[str], list[str]]:
    """The kind's phrase occurrences: mean states (M, D + 1), their phrases and concepts."""
    table = training_phrases()
    index = 1 + KINDS.index(kind)
    rows = torch.nonzero(data.kinds == index).flatten()
    ids, inverse = torch.unique(data.occurrence[rows], return_inverse=True)
    x = _design(data.states[rows])
    sums = torch.zeros(len(ids), x.shape[1], dtype=torch.float64).index_add_(0, inverse, x)
    counts = torch.bincount(inverse, minlength=len(ids)).double()[:, None]
    first = torch.zeros(len(ids), dtype=torch.long).scatter_(0, inverse.flip(0), rows.flip(0))
    phrases = [data.phrases[int(r)] for r in first]
    return sums / counts, phrases, [table[p].split(":")[1] for p in phrases]


def fit_prompt_reader(
    encoder: TextEncoder,
    count: int = 3000,
    seed: int = 0,
    log: Callable[[str], None] | None = None,
    penalties: tuple[float, ...] = PENALTIES,
    without: frozenset[str] = frozenset(),
    templated: tuple[str, ...] = TEMPLATED_KINDS,
    kind_context: str = KIND_CONTEXT,
    frames: Templates | None = None,
    fallback_context: str | None = FALLBACK_CONTEXT,
) -> tuple[PromptReader, dict]:
    """A reader fitted on `count` training captions (none using a phrase of `without`; in the
    training templates, or only in `frames`), and what choosing its penalties (among
    `penalties`) measured. The `templated` kinds are read in `concept_templates` (none: every
    kind in the prompt, as v18's reader does); the kind readout reads `kind_context`, and a
    second one `fallback_context` where the first leaves a prompt unread (None: no second)."""
    templates = {kind: concept_templates(kind, frames) for kind in templated}
    captions = [c for c, _ in training_captions(count, seed, without, templates=frames)]
    data = labelled_tokens(encoder, captions)
    report: dict = {
        "captions": count,
        "tokens": len(data.kinds),
        "kind_context": kind_context,
        "fallback_kind_context": fallback_context,
        "penalties": {},
    }

    def choose(
        name: str,
        x: torch.Tensor,
        y: torch.Tensor,
        groups: list[torch.Tensor],
        penalties: tuple[float, ...] = penalties,
        one_reading: bool = False,
    ) -> float:
        scored = {p: _synonym_out(x, y, groups, p, one_reading) for p in penalties}
        penalty = max(penalties, key=lambda p: (scored[p], p))  # ties: the larger penalty
        report["penalties"][name] = {"chosen": penalty, "synonym_out_accuracy": scored}
        if log:
            log(f"{name}: synonym-out accuracy {scored}; penalty {penalty}")
        return penalty

    # 1. Which kind of thing each token names (and, for the fallback, the same again).
    kind_weights = _fit_kind(data, kind_context, lambda *a: choose("kind", *a))
    fallback = None
    if fallback_context is not None:
        weights = _fit_kind(data, fallback_context, lambda *a: choose("kind_fallback", *a))
        fallback = (fallback_context, weights.float())

    # 2. Per kind, which concept a phrase names: colours and backgrounds from the phrase's
    # mean state in its caption, the templated kinds from its words' states in the templates.
    concept_weights, concepts = {}, {}
    for kind in KINDS:
        if kind in templates:
            concepts[kind], concept_weights[kind] = _fit_templated(
                encoder, kind, templates[kind], without, choose
            )
            continue
        means, phrase_list, concept_list = _phrase_means(data, kind)
        concepts[kind] = sorted(set(concept_list))
        y = torch.nn.functional.one_hot(
            torch.tensor([concepts[kind].index(c) for c in concept_list]), len(concepts[kind])
        ).double()
        synonyms = _synonyms(kind)
        named = np.array(phrase_list)
        groups = [
            torch.from_numpy(np.flatnonzero(named == p)) for p in synonyms if (named == p).any()
        ]
        # Colours have no synonyms (both wordings share them): the smallest penalty.
        penalty = choose(kind, means, y, groups) if groups else min(penalties)
        concept_weights[kind] = _solve(means.T @ means, means.T @ y, penalty).float()
    backgrounds = tuple(p for phrases in BACKGROUND_WORDS["train"].values() for p in phrases)
    reader = PromptReader(
        kind_weights.float(),
        concept_weights,
        concepts,
        written_phrases(),
        "black",
        backgrounds,
        templates,
        kind_context,
        fallback,
    )
    return reader, report


def _fit_kind(data: LabelledTokens, context: str, choose: Callable[..., float]) -> torch.Tensor:
    """The kind readout (D + 1 or 3D + 1, 1 + kinds) of `context`, its penalty chosen by
    leaving out every synonym of every kind. Each kind weighs the same in the fit (rows scaled
    by the root of 1 / its share), or the "other" tokens, half of all, would pull every
    uncertain word to "other"."""
    share = torch.bincount(data.kinds, minlength=len(KINDS) + 1).double() / len(data.kinds)
    balance = (1.0 / share[data.kinds]).sqrt()[:, None]  # (N, 1)
    features = data.states if context == "own" else data.contexts  # (N, D) or (N, 3D)
    x = _design(features) * balance
    y = torch.nn.functional.one_hot(data.kinds, len(KINDS) + 1).double() * balance
    phrases = np.array(data.phrases)
    groups = [
        torch.from_numpy(np.flatnonzero(phrases == p))
        for kind in KINDS
        for p in _synonyms(kind)
        if (phrases == p).any()
    ]
    return _solve(x.T @ x, x.T @ y, choose(x, y, groups))


def _fit_templated(
    encoder: TextEncoder,
    kind: str,
    templates: list[str],
    without: frozenset[str],
    choose: Callable[..., float],
) -> tuple[list[str], torch.Tensor]:
    """A templated kind's concepts and readout (D + 1, C): every training phrase of the kind
    (but `without`) in every template, one row each, the penalty chosen by reading each synonym
    from its templates with the others' readout."""
    table = {
        p: label.split(":")[1]
        for p, label in training_phrases().items()
        if label.startswith(kind + ":") and p not in without
    }
    phrases = list(table)
    concepts = sorted(set(table.values()))
    x = template_states(
        encoder, [t for _ in phrases for t in templates], [p for p in phrases for _ in templates]
    ).double()  # (P * T, D + 1)
    labels = torch.tensor([concepts.index(table[p]) for p in phrases])
    y = (
        torch.nn.functional.one_hot(labels, len(concepts))
        .double()
        .repeat_interleave(len(templates), 0)
    )  # (P * T, C)
    synonyms = _synonyms(kind)
    groups = [
        torch.arange(k * len(templates), (k + 1) * len(templates))
        for k, p in enumerate(phrases)
        if p in synonyms
    ]
    penalty = choose(kind, x, y, groups, TEMPLATE_PENALTIES, one_reading=True)
    return concepts, _solve(x.T @ x, x.T @ y, penalty).float()


def left_out_synonyms() -> frozenset[str]:
    """One training phrase per concept that has several, the last of each list (for motions
    the last participle and its finite verb): a stand-in for held-out wording made of the
    training wording alone."""
    out: set[str] = set()
    for words in (SHAPE_WORDS, SIZE_WORDS, BACKGROUND_WORDS):
        out.update(phrases[-1] for phrases in words["train"].values() if len(phrases) > 1)
    for participles, finites in MOTION_PHRASES["train"].values():
        out.update((participles[-1], finites[-1]))
    return frozenset(out)


def synonyms_out_reading(
    encoder: TextEncoder, count: int = 3000, prompts: int = 400, seed: int = 0, **kinds: Any
) -> dict:
    """How well a reader fitted without `left_out_synonyms` reads training captions that use
    them (each caption at least one): the share read right whole, and of objects. Measures the
    reader's rules and readouts on words it never saw, with no held-out word involved. `kinds`:
    `fit_prompt_reader`'s `kind_context` and `fallback_context`."""
    without = left_out_synonyms()
    reader, _ = fit_prompt_reader(encoder, count, seed, without=without, **kinds)
    captions = training_captions(prompts, seed + 1, using=without)
    return {"left_out": sorted(without), **_reading(reader, encoder, captions)}


def frames_out_reading(
    encoder: TextEncoder, count: int = 3000, prompts: int = 400, seed: int = 0, **kinds: Any
) -> dict:
    """How well a reader fitted without the last `FRAMES_OUT` training templates reads training
    captions written in them: the reader on sentence frames it never saw (as users' prompts
    are), with no held-out word involved. `kinds` as for `synonyms_out_reading`."""
    train = TEMPLATES["train"]
    kept = {n: train[n][: len(train[n]) - out] for n, out in FRAMES_OUT.items()}
    left = {n: train[n][len(train[n]) - out :] for n, out in FRAMES_OUT.items()}
    reader, _ = fit_prompt_reader(encoder, count, seed, frames=kept, **kinds)
    captions = training_captions(prompts, seed + 1, templates=left)
    return {
        "left_out": [t for n in sorted(left) for t in left[n]],
        **_reading(reader, encoder, captions),
    }


def _reading(reader: PromptReader, encoder: TextEncoder, captions: list[tuple[str, Scene]]) -> dict:
    """How well `reader` reads captions of known scenes: whole, per object, and a few misses."""
    right = objects = objects_right = unread = 0
    misses: list[dict] = []
    for caption, scene in captions:
        want = [(o.colour, o.shape, o.motion) for o in scene.objects]
        objects += len(want)
        reading = reader.read(encoder, caption)
        if reading is None:
            unread += 1
            misses.append({"prompt": caption, "read_as": None})
            continue
        got = [(o.colour, o.shape, o.motion) for o in reading.objects]
        objects_right += sum(g == w for g, w in zip(got, want, strict=False))
        right += got == want
        if got != want:
            misses.append({"prompt": caption, "read_as": reading.prompt})
    return {
        "prompts": len(captions),
        "read_right": right / len(captions),
        "objects_right": objects_right / objects,
        "unread": unread,
        "misses": misses[:12],
    }
