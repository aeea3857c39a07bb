"""Captions for Shapes World scenes, and the parser that reads them (and users' prompts) back.

Two wordings share the colour names (the palette's, which the model must learn as they are)
and nothing else: the *training* wording, and a *held-out* wording whose templates and
shape / motion / background / size words never appear in a training caption, so that an
eval in held-out wording tests understanding, not memorised sentences.

The parser reads either wording by keywords, not templates: each object is a palette colour
word, followed by a shape word, with a motion word nearby; so it also reads plain prompts
like "a red circle moving right on a black background".
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from vidora.world.scene import Scene, WorldObject
from vidora.world.spec import BACKGROUNDS, COLOURS

Wording = Literal["train", "heldout"]
WORDINGS: tuple[str, ...] = ("train", "heldout")

# --- vocabulary: wording -> concept -> phrases ----------------------------------------

SHAPE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "circle": ("circle", "disc", "dot"),
        "square": ("square", "box", "block"),
        "triangle": ("triangle", "wedge", "pyramid"),
    },
    "heldout": {
        "circle": ("ball", "orb"),
        "square": ("tile", "cube"),
        "triangle": ("triangular shape",),
    },
}

BACKGROUND_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "black": ("black", "jet black", "pitch black"),
        "gray": ("gray", "grey", "mid grey", "stone gray"),
        "navy": ("navy", "deep navy", "dark navy", "midnight"),
    },
    "heldout": {
        "black": ("ebony",),
        "gray": ("slate",),
        "navy": ("indigo",),
    },
}

BACKGROUND_NOUNS: tuple[str, ...] = ("background", "backdrop", "canvas")
"""Nouns for the background in training templates (held-out templates phrase it their own way)."""

SIZE_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {"small": ("small", "little"), "large": ("large", "big")},
    "heldout": {"small": ("tiny",), "large": ("huge",)},
}

SIZE_WORD_PROBABILITY = 0.5
"""Size words are optional: each object gets one with this probability."""

# Each motion as a participle ("a red circle moving left") and as a finite verb
# ("a red circle moves left"), index-aligned so either form can be chosen.
MOTION_PHRASES: dict[str, dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "train": {
        "left": (
            ("moving left", "sliding to the left", "drifting leftward", "travelling left"),
            ("moves left", "slides to the left", "drifts leftward", "travels left"),
        ),
        "right": (
            ("moving right", "sliding to the right", "drifting rightward", "travelling right"),
            ("moves right", "slides to the right", "drifts rightward", "travels right"),
        ),
        "up": (
            ("moving up", "rising", "drifting upward", "travelling upward"),
            ("moves up", "rises", "drifts upward", "travels upward"),
        ),
        "down": (
            ("moving down", "sinking", "drifting downward", "travelling downward"),
            ("moves down", "sinks", "drifts downward", "travels downward"),
        ),
        "still": (
            ("standing still", "staying still", "not moving", "at rest", "motionless"),
            ("stands still", "stays still", "does not move", "rests in place", "is motionless"),
        ),
        "bouncing": (
            ("bouncing", "bouncing on the floor", "falling and bouncing", "hopping"),
            ("bounces", "bounces on the floor", "falls and bounces", "hops"),
        ),
    },
    "heldout": {
        "left": (
            ("gliding leftwards", "heading to the left side"),
            ("glides leftwards", "heads to the left side"),
        ),
        "right": (
            ("gliding rightwards", "heading to the right side"),
            ("glides rightwards", "heads to the right side"),
        ),
        "up": (("ascending", "gliding upwards"), ("ascends", "glides upwards")),
        "down": (("descending", "gliding downwards"), ("descends", "glides downwards")),
        "still": (
            ("remaining stationary", "sitting unmoving"),
            ("remains stationary", "sits unmoving"),
        ),
        "bouncing": (
            ("rebounding off the bottom", "ricocheting off the floor"),
            ("rebounds off the bottom", "ricochets off the floor"),
        ),
    },
}

# --- templates --------------------------------------------------------------------------
# Fields: {obj} "small red circle", {a_obj} "a small red circle", {mp} participle motion,
# {mf} finite motion, {bg} background word, {a_bg} "a black", {bn} background noun; two-object
# templates number them {obj1} {mp2} ... Templates ending in "." are sentences (capitalised);
# the rest are plain lists. An object's motion always follows its shape in two-object
# templates, which is what lets the parser pair them.

TEMPLATES: dict[str, dict[int, tuple[str, ...]]] = {
    "train": {
        1: (
            "{obj}, {mp}, {bg} {bn}",
            "{obj}; {mp}; {bg} {bn}",
            "{bg} {bn}, {obj} {mp}",
            "{obj} {mp} | {bg} {bn}",
            "clip: {obj} {mp}, {bg} {bn}",
            "{a_obj} {mp} on {a_bg} {bn}.",
            "{a_obj} {mf} against {a_bg} {bn}.",
            "on {a_bg} {bn}, {a_obj} {mf}.",
            "a video of {a_obj} {mp} over {a_bg} {bn}.",
            "{a_obj} that {mf}, shown on {a_bg} {bn}.",
            "there is {a_obj} {mp} in front of {a_bg} {bn}.",
            "against {a_bg} {bn}, {a_obj} {mf}.",
            "{a_bg} {bn} with {a_obj} {mp}.",
            "an animation of {a_obj} that {mf} on {a_bg} {bn}.",
            "{a_bg} {bn}. {a_obj} {mf}.",
            "watch as {a_obj} {mf} on {a_bg} {bn}.",
        ),
        2: (
            "{obj1}, {mp1}; {obj2}, {mp2}; {bg} {bn}",
            "{bg} {bn}: {obj1} {mp1}, {obj2} {mp2}",
            "{a_obj1} {mp1} and {a_obj2} {mp2} on {a_bg} {bn}.",
            "on {a_bg} {bn}, {a_obj1} {mf1} while {a_obj2} {mf2}.",
            "{a_bg} {bn} with {a_obj1} {mp1} and {a_obj2} {mp2}.",
            "two shapes: {a_obj1} that {mf1} and {a_obj2} that {mf2}, {bg} {bn}.",
        ),
    },
    "heldout": {
        1: (
            "here we see {a_obj} {mp}; everything behind it is {bg}.",
            "footage showing {a_obj} that {mf}, set against {bg} surroundings.",
            "{bg} scenery, and the only thing in view is {a_obj} {mp}.",
            "picture {a_obj} {mp} with nothing but {bg} behind it.",
        ),
        2: (
            "here we see {a_obj1} {mp1}, plus {a_obj2} {mp2}; everything behind them is {bg}.",
            "footage showing {a_obj1} that {mf1} and {a_obj2} that {mf2}, set against {bg} "
            "surroundings.",
            "{bg} scenery, and in view are {a_obj1} {mp1} alongside {a_obj2} {mp2}.",
        ),
    },
}


def write_caption(
    scene: Scene,
    rng: np.random.Generator,
    wording: Wording = "train",
    background_word: str | None = None,
    templates: Mapping[int, tuple[str, ...]] | None = None,
) -> str:
    """A caption naming every object's colour, shape and motion, and the background.

    `background_word` stands in for the wording's word for the background (the same draws are
    made either way): training with a word the model cannot read there (`stand_in_words`)
    teaches it to draw a Shapes World canvas when a prompt names one in words it never saw.
    `templates` (by object count; default the wording's own) are the sentence frames drawn
    from: the prompt reader's frames-out check writes captions in frames it was not fitted on."""
    return write_caption_with_spans(scene, rng, wording, background_word, templates)[0]


def write_caption_with_spans(
    scene: Scene,
    rng: np.random.Generator,
    wording: Wording = "train",
    background_word: str | None = None,
    templates: Mapping[int, tuple[str, ...]] | None = None,
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """`write_caption`'s caption (the same draws, the same text) and, for each of the scene's
    objects in order, the characters [start, end) of its phrase: from its noun ("a small red
    disc") to the end of its motion ("moving right"). The grounding loss
    (`vidora.train.grounding`) asks the DiT's cross-attention to read each phrase where its
    object is drawn."""
    if wording not in WORDINGS:
        raise ValueError(f"wording must be one of {', '.join(WORDINGS)}, not {wording!r}")
    num_objects = len(scene.objects)
    frames = (TEMPLATES[wording] if templates is None else templates).get(num_objects)
    if not frames:
        raise ValueError(f"no caption templates for {num_objects} objects")
    template = frames[rng.integers(len(frames))]
    bg = _pick(rng, BACKGROUND_WORDS[wording][scene.background])
    if background_word is not None:
        bg = background_word
    fields = {"bg": bg, "a_bg": f"{_article(bg)} {bg}", "bn": _pick(rng, BACKGROUND_NOUNS)}
    for k, obj in enumerate(scene.objects, start=1):
        suffix = "" if num_objects == 1 else str(k)
        noun = _object_phrase(obj, rng, wording)
        participles, finites = MOTION_PHRASES[wording][obj.motion]
        form = rng.integers(len(participles))
        fields["obj" + suffix] = noun
        fields["a_obj" + suffix] = f"{_article(noun)} {noun}"
        fields["mp" + suffix] = participles[form]
        fields["mf" + suffix] = finites[form]
    caption, where = _fill(template, fields)
    spans = []
    for k in range(1, num_objects + 1):
        suffix = "" if num_objects == 1 else str(k)
        placed = [where[f + suffix] for f in ("obj", "a_obj", "mp", "mf") if f + suffix in where]
        spans.append((min(a for a, _ in placed), max(b for _, b in placed)))
    # Sentence case changes letters, not lengths: the spans hold.
    return (_sentence_case(caption) if template.endswith(".") else caption), tuple(spans)


def fill_template(template: str, fields: dict[str, str]) -> str:
    """A template (`TEMPLATES`) filled in as `write_caption` fills it: `fields` gives "obj",
    "mp", "mf" and "bg" ("a_obj" and "a_bg" follow with their articles, "bn" defaults to
    "background"); sentences are capitalised."""
    fields = {
        "a_obj": f"{_article(fields['obj'])} {fields['obj']}",
        "a_bg": f"{_article(fields['bg'])} {fields['bg']}",
        "bn": "background",
        **fields,
    }
    caption, _ = _fill(template, fields)
    return _sentence_case(caption) if template.endswith(".") else caption


def _fill(template: str, fields: dict[str, str]) -> tuple[str, dict[str, tuple[int, int]]]:
    """`template.format(**fields)` and where each field it used landed, [start, end)."""
    parts: list[str] = []
    where: dict[str, tuple[int, int]] = {}
    length = 0
    for literal, name, _, _ in string.Formatter().parse(template):
        parts.append(literal)
        length += len(literal)
        if name is not None:
            value = fields[name]
            where[name] = (length, length + len(value))
            parts.append(value)
            length += len(value)
    return "".join(parts), where


def _object_phrase(obj: WorldObject, rng: np.random.Generator, wording: str) -> str:
    """'[size] colour shape', e.g. 'small red disc'."""
    shape = _pick(rng, SHAPE_WORDS[wording][obj.shape])
    if rng.random() < SIZE_WORD_PROBABILITY:
        return f"{_pick(rng, SIZE_WORDS[wording][obj.size])} {obj.colour} {shape}"
    return f"{obj.colour} {shape}"


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[rng.integers(len(options))]


def _article(phrase: str) -> str:
    return "an" if phrase[0] in "aeiou" else "a"


def _sentence_case(text: str) -> str:
    """Capitalise the first letter of each sentence."""
    return re.sub(r"(^|[.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)


# --- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class PromptObject:
    """One object a prompt asks for; size is None when the prompt does not say."""

    colour: str
    shape: str
    motion: str
    size: str | None


@dataclass(frozen=True)
class ParsedPrompt:
    """What a prompt asks for; background is None when the prompt does not say."""

    background: str | None
    objects: tuple[PromptObject, ...]


def _table(concept: str, phrases: str) -> dict[str, str]:
    """'a|b c' -> {'a': concept, 'b c': concept}."""
    return dict.fromkeys(phrases.split("|"), concept)


def _keywords() -> dict[str, dict[str, str]]:
    """kind -> phrase -> concept: every caption word in both wordings plus common extras."""
    kinds: dict[str, dict[str, str]] = {
        "colour": {c: c for c in COLOURS},
        "shape": {
            **_table("circle", "circles|disk|round|ring"),
            **_table("square", "squares|rectangle"),
            **_table("triangle", "triangles|triangular"),
        },
        "background": {},
        "size": {**_table("small", "smaller"), **_table("large", "larger|bigger")},
        "bouncing": _table(
            "bouncing",
            "bounce|bounces|bouncing|bounced|bouncy|rebound|rebounds|rebounding|ricochet"
            "|ricochets|ricocheting|hop|hops|hopping",
        ),
        "still": _table(
            "still",
            "still|not moving|does not move|doesnt move|isnt moving|is not moving|motionless"
            "|stationary|unmoving|at rest|rests in place|resting|static|immobile|no motion"
            "|no movement",
        ),
        "direction": {
            **_table("left", "left|leftward|leftwards|westward|westwards"),
            **_table("right", "right|rightward|rightwards|eastward|eastwards"),
            **_table(
                "up",
                "up|upward|upwards|rising|rises|rise|ascending|ascends|ascend|climbing"
                "|climbs|climb",
            ),
            **_table(
                "down",
                "down|downward|downwards|sinking|sinks|sink|descending|descends"
                "|descend|falling|falls|fall|dropping|drops",
            ),
        },
    }
    for wording in WORDINGS:
        for concept, phrases in SHAPE_WORDS[wording].items():
            kinds["shape"].update(dict.fromkeys(phrases, concept))
        for concept, phrases in BACKGROUND_WORDS[wording].items():
            kinds["background"].update(dict.fromkeys(phrases, concept))
        for concept, phrases in SIZE_WORDS[wording].items():
            kinds["size"].update(dict.fromkeys(phrases, concept))
    return kinds


_KEYWORDS = _keywords()
_BACKGROUND_NOUNS = frozenset(BACKGROUND_NOUNS) | {"wall", "backround", "scenery", "surroundings"}
_MAX_PHRASE = max(len(p.split()) for table in _KEYWORDS.values() for p in table)
_LOOKUP: dict[tuple[str, ...], tuple[str, str]] = {
    tuple(phrase.split()): (kind, concept)
    for kind, table in _KEYWORDS.items()
    for phrase, concept in table.items()
}


def caption_vocabulary() -> list[str]:
    """Every phrase a caption of either wording can hold (templates without their fields, and
    every table's words) and every word the parser knows: the texts whose tokens a text
    encoder's vocabulary subset must keep to encode any Shapes World caption."""
    texts = [
        re.sub(r"\{\w+\}", " ", t) for w in WORDINGS for n in TEMPLATES[w] for t in TEMPLATES[w][n]
    ]
    for wording in WORDINGS:
        for table in (SHAPE_WORDS, BACKGROUND_WORDS, SIZE_WORDS):
            texts += [p for phrases in table[wording].values() for p in phrases]
        texts += [p for forms in MOTION_PHRASES[wording].values() for form in forms for p in form]
    texts += list(COLOURS) + list(BACKGROUND_NOUNS) + list(_BACKGROUND_NOUNS) + ["a", "an"]
    texts += [phrase for table in _KEYWORDS.values() for phrase in table]
    return texts + [_sentence_case(t.strip() + ".") for t in texts]


def stand_in_words(vocabulary: Iterable[str], count: int = 1000, seed: int = 0) -> tuple[str, ...]:
    """Up to `count` words of a text encoder's `vocabulary` (whole words of three letters or
    more) that no caption of either wording holds, nor is part of one or holds one, nor the
    parser reads: a random sample, the same for the same vocabulary. Neither wording's words
    nor their pieces ('rico' of 'ricocheting') can be drawn, so the held-out wording stays
    unseen in training."""
    used = {w for text in caption_vocabulary() for w in _tokens(text) if len(w) >= 3}

    def usable(word: str) -> bool:
        plain = len(word) >= 3 and word.isascii() and word.isalpha() and word.islower()
        return plain and not any(u in word or word in u for u in used)

    words = sorted(w for w in set(vocabulary) if usable(w))
    rng = np.random.default_rng(seed)
    picked = rng.choice(len(words), size=min(count, len(words)), replace=False)
    return tuple(words[i] for i in sorted(picked))


@dataclass(frozen=True)
class _Hit:
    position: int
    kind: str
    concept: str
    length: int = 1
    """Words the keyword spans ("at rest": 2)."""

    @property
    def end(self) -> int:
        return self.position + self.length


def _tokens(text: str) -> list[str]:
    """Lower-case words; hyphens and punctuation split words, apostrophes vanish."""
    text = text.lower().replace("'", "").replace("\u2019", "")
    return re.findall(r"[a-z0-9]+", text)


def _scan(tokens: list[str]) -> list[_Hit]:
    """Keyword hits left to right, the longest phrase winning at each position."""
    hits: list[_Hit] = []
    i = 0
    while i < len(tokens):
        for n in range(min(_MAX_PHRASE, len(tokens) - i), 0, -1):
            found = _LOOKUP.get(tuple(tokens[i : i + n]))
            if found:
                hits.append(_Hit(i, *found, n))
                i += n
                break
        else:
            i += 1
    return hits


def _motion(hits: list[_Hit]) -> str | None:
    """A bounce outranks a fall ("falls and bounces"), stillness outranks a stray direction."""
    for kind in ("bouncing", "still"):
        if any(h.kind == kind for h in hits):
            return kind
    directions = [h.concept for h in hits if h.kind == "direction"]
    return directions[0] if directions else None


def parse_prompt(text: str) -> ParsedPrompt:
    """Read the objects (colour, shape, motion, size) and background a prompt asks for.

    Each palette colour word starts an object; its shape is the first shape word after it and
    its motion a motion word before the next object (for the first object, also before it).
    Raises ValueError saying what is missing when an object lacks a shape or a motion.
    """
    tokens = _tokens(text)
    hits = _scan(tokens)
    for h in hits:
        after = tokens[h.position + 1] if h.position + 1 < len(tokens) else ""
        if h.kind == "colour" and after in _BACKGROUND_NOUNS:
            raise ValueError(
                f"{h.concept!r} is not a Shapes World background; use one of "
                f"{', '.join(BACKGROUNDS)}"
            )
    background = next((h.concept for h in hits if h.kind == "background"), None)
    starts = [k for k, h in enumerate(hits) if h.kind == "colour"]
    if not starts:
        raise ValueError(f"found no object colour in {text!r}; name one of {', '.join(COLOURS)}")
    objects = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(hits)
        colour_hit, segment = hits[start], hits[start + 1 : end]
        shape = next((h.concept for h in segment if h.kind == "shape"), None)
        if shape is None:
            raise ValueError(
                f"no shape for the {colour_hit.concept} object in {text!r}; "
                "say circle, square or triangle"
            )
        motion = _motion(segment)
        if motion is None and n == 0:
            motion = _motion(hits[:start])
        if motion is None:
            raise ValueError(
                f"no motion for the {colour_hit.concept} {shape} in {text!r}; say left, right, "
                "up, down, still or bouncing"
            )
        objects.append(
            PromptObject(colour_hit.concept, shape, motion, _size(hits, start, colour_hit))
        )
    return ParsedPrompt(background=background, objects=tuple(objects))


def _size(hits: list[_Hit], start: int, colour_hit: _Hit) -> str | None:
    """The size word right before the colour ("small red") or right after it ("red small")."""
    for k in (start - 1, start + 1):
        near = 0 <= k < len(hits) and abs(hits[k].position - colour_hit.position) == 1
        if near and hits[k].kind == "size":
            return hits[k].concept
    return None


# --- one prompt per object ------------------------------------------------------------------

_MOTION_KINDS = ("bouncing", "still", "direction")


def _motion_tails() -> tuple[tuple[str, ...], ...]:
    """The words some motion phrases carry after their last keyword ("bouncing" + "on the
    floor", "heading to the left" + "side"), longest first: an object's phrase runs past them."""
    tails = set()
    for wording in WORDINGS:
        for forms in MOTION_PHRASES[wording].values():
            for phrase in (p for form in forms for p in form):
                tokens = _tokens(phrase)
                end = max(h.end for h in _scan(tokens) if h.kind in _MOTION_KINDS)
                if end < len(tokens):
                    tails.add(tuple(tokens[end:]))
    return tuple(sorted(tails, key=len, reverse=True))


_MOTION_TAILS = _motion_tails()
_ARTICLES = frozenset({"a", "an", "the", "one"})


def _token_spans(text: str) -> list[tuple[int, int]]:
    """Where each of `_tokens(text)`'s words lies in `text`, [start, end): found in the same
    lower-cased text, whose characters are mapped back (a lower case can be longer: "İ")."""
    lowered, origin = [], []
    for i, char in enumerate(text):
        for low in char.lower():
            lowered.append(low)
            origin.append(i)
    return [
        (origin[m.start()], origin[m.end() - 1] + 1)
        for m in re.finditer(r"[a-z0-9'\u2019]+", "".join(lowered))
        if re.search(r"[a-z0-9]", m.group())
    ]


def object_prompts(text: str) -> tuple[str, ...]:
    """One prompt per object a prompt names, each in the prompt's own words with the other
    objects' phrases cut out ("a red circle moving right and a blue square rising on a black
    background" -> "a red circle moving right on a black background", "a blue square rising on
    a black background"). A prompt naming one object, or one `parse_prompt` cannot read, comes
    back alone. The pipeline's object-by-object composition (`vidora.pipelines.composition`)
    draws each object from its own prompt, so that no object takes another's shape or motion.
    """
    try:
        parsed = parse_prompt(text)
    except ValueError:
        return (text,)
    if len(parsed.objects) < 2:
        return (text,)
    tokens = _tokens(text)
    spans = _token_spans(text)
    hits = _scan(tokens)
    starts = [k for k, h in enumerate(hits) if h.kind == "colour"]
    # Each object's phrase in words: [article] [size] colour ... its last shape or motion word
    # before the next object (and the motion phrase's tail).
    phrases = []
    for n, start in enumerate(starts):
        end = starts[n + 1] if n + 1 < len(starts) else len(hits)
        first = hits[start].position
        if start > 0 and hits[start - 1].kind == "size" and hits[start - 1].end == first:
            first = hits[start - 1].position
        if first > 0 and tokens[first - 1] in _ARTICLES:
            first -= 1
        own = [h for h in hits[start:end] if h.kind in ("colour", "shape", *_MOTION_KINDS)]
        last = max(h.end for h in own)
        for tail in _MOTION_TAILS:
            if tuple(tokens[last : last + len(tail)]) == tail:
                last += len(tail)
                break
        phrases.append((spans[first][0], spans[last - 1][1]))
    prompts = []
    for n in range(len(phrases)):
        # Each other object is cut up to the next object's phrase ("a red circle moving right
        # and "); the last from where the kept one ends (" and a blue square rising").
        cuts = sorted(
            (phrases[m][0], phrases[m + 1][0])
            if m + 1 < len(phrases)
            else (phrases[n][1], phrases[m][1])
            for m in range(len(phrases))
            if m != n
        )
        kept, done = "", 0
        for start, end in cuts:
            kept += text[done:start] if start > done else ""
            done = max(done, end)
        prompts.append(_tidy(kept + text[done:], capital=text[:1].isupper()))
    return tuple(prompts)


def _tidy(text: str, capital: bool) -> str:
    """Spaces and punctuation left over from a cut: no doubled spaces, no space before a
    mark, no mark opening the text."""
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,;:.!?])", r"\1", text)
    text = re.sub(r"([,;:])(?=[,;:.!?])", "", text)
    text = re.sub(r"^[,;:.!?\s]+", "", text)
    return text[:1].upper() + text[1:] if capital else text
