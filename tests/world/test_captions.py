"""Captions: varied, naming every object, held-out wording never leaking into training
captions, and parse_prompt reading back every caption (and plain user prompts)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from vidora.world.captions import (
    BACKGROUND_NOUNS,
    BACKGROUND_WORDS,
    MOTION_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    TEMPLATES,
    ParsedPrompt,
    PromptObject,
    object_prompts,
    parse_prompt,
    stand_in_words,
    write_caption,
)
from vidora.world.scene import Scene, sample_scene
from vidora.world.spec import BACKGROUNDS, COLOURS, MOTIONS, SHAPES, SIZES


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    rng = np.random.default_rng(2024)
    # Both kinds of scene, so every (colour, shape, motion) triple gets captioned.
    return [
        sample_scene(rng, SIZES[k % 3], held_out="exclude" if k % 4 else "require")
        for k in range(2400)
    ]


@pytest.fixture(scope="module")
def captions(scenes: list[Scene]) -> dict[str, list[str]]:
    rng = np.random.default_rng(7)
    return {w: [write_caption(scene, rng, w) for scene in scenes] for w in ("train", "heldout")}


def test_vocabulary_is_as_varied_as_the_spec_asks() -> None:
    assert len(TEMPLATES["train"][1]) >= 12
    assert len(TEMPLATES["heldout"][1]) >= 3 and len(TEMPLATES["heldout"][2]) >= 1
    assert len(TEMPLATES["train"][2]) >= 3
    for shape in SHAPES:
        assert len(SHAPE_WORDS["train"][shape]) >= 3 and SHAPE_WORDS["heldout"][shape]
    for background in BACKGROUNDS:
        assert len(BACKGROUND_WORDS["train"][background]) >= 3
        assert BACKGROUND_WORDS["heldout"][background]
    for motion in MOTIONS:
        participles, finites = MOTION_PHRASES["train"][motion]
        assert len(participles) >= 3 and len(participles) == len(finites)
        participles, finites = MOTION_PHRASES["heldout"][motion]
        assert participles and len(participles) == len(finites)
    # Both plain lists and full sentences.
    single = TEMPLATES["train"][1]
    assert sum(t.endswith(".") for t in single) >= 4
    assert sum(not t.endswith(".") for t in single) >= 4


def test_captions_are_varied(captions: dict[str, list[str]]) -> None:
    assert len(set(captions["train"])) > 0.9 * len(captions["train"])
    lists = [c for c in captions["train"] if not c.endswith(".")]
    sentences = [c for c in captions["train"] if c.endswith(".")]
    assert lists and sentences
    assert any(re.fullmatch(r"\w+ \w+, [\w ]+, [\w ]+", c) for c in lists)


def test_captions_name_colours_by_their_palette_names(
    scenes: list[Scene], captions: dict[str, list[str]]
) -> None:
    for wording in ("train", "heldout"):
        for scene, caption in zip(scenes, captions[wording], strict=True):
            words = _words(caption)
            assert {o.colour for o in scene.objects} == words & set(COLOURS)


def _all_phrases(wording: str) -> list[str]:
    phrases = [
        p
        for table in (SHAPE_WORDS, BACKGROUND_WORDS, SIZE_WORDS)
        for options in table[wording].values()
        for p in options
    ]
    for participles, finites in MOTION_PHRASES[wording].values():
        phrases += [*participles, *finites]
    return phrases


def _template_words(wording: str) -> set[str]:
    words: set[str] = set()
    for templates in TEMPLATES[wording].values():
        for template in templates:
            words |= _words(re.sub(r"\{\w+\}", " ", template))
    return words


def _template_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{\w+\}", template)
    return re.compile(".+?".join(re.escape(p) for p in parts), re.IGNORECASE)


def test_held_out_wording_never_appears_in_training_captions(
    captions: dict[str, list[str]],
) -> None:
    train_vocabulary = set().union(*(_words(p) for p in _all_phrases("train")))
    train_vocabulary |= _template_words("train") | set(BACKGROUND_NOUNS)
    # Each held-out synonym and template carries at least one word training never uses...
    novel = set()
    for phrase in _all_phrases("heldout"):
        new = _words(phrase) - train_vocabulary - set(COLOURS)
        assert new, f"held-out phrase {phrase!r} has no word of its own"
        novel |= new
    for templates in TEMPLATES["heldout"].values():
        for template in templates:
            new = _words(re.sub(r"\{\w+\}", " ", template)) - train_vocabulary
            assert new, f"held-out template {template!r} has no word of its own"
            novel |= new
    # ... and no training caption contains one of those words, a held-out phrase, or a
    # held-out template's sentence.
    patterns = [_template_regex(t) for ts in TEMPLATES["heldout"].values() for t in ts]
    held_phrases = [re.compile(rf"\b{re.escape(p)}\b") for p in _all_phrases("heldout")]
    for caption in captions["train"]:
        lower = caption.lower()
        assert not _words(caption) & novel, caption
        assert not any(p.search(lower) for p in held_phrases), caption
        assert not any(p.fullmatch(caption) for p in patterns), caption
    # Held-out captions do use the held-out wording.
    for caption in captions["heldout"]:
        assert _words(caption) & novel
        assert any(p.fullmatch(caption) for p in patterns), caption


def test_stand_in_background_words_hold_no_word_of_either_wording(scenes: list[Scene]) -> None:
    from vidora.models.text_encoder import builtin_vocabulary

    vocabulary = builtin_vocabulary()
    stand_ins = stand_in_words(vocabulary)
    assert len(stand_ins) == 1000 and stand_ins == stand_in_words(vocabulary)  # reproducible
    words = set().union(*(_words(p) for w in ("train", "heldout") for p in _all_phrases(w)))
    words |= _template_words("train") | _template_words("heldout") | set(COLOURS)
    words |= set(BACKGROUNDS) | set(BACKGROUND_NOUNS)
    words = {w for w in words if len(w) >= 3}
    for stand_in in stand_ins:  # nor a form of one ('slates'), nor a piece ('rico')
        assert not any(w in stand_in or stand_in in w for w in words), stand_in
    # In a caption, the stand-in takes the background word's place and changes nothing else.
    background_words = _words(" ".join(p for ps in BACKGROUND_WORDS["train"].values() for p in ps))
    for k, scene in enumerate(scenes[:300]):
        plain = write_caption(scene, np.random.default_rng(k))
        swapped = write_caption(scene, np.random.default_rng(k), background_word=stand_ins[k])
        assert stand_ins[k] in _words(swapped), swapped
        assert _words(plain) - _words(swapped) <= background_words | {"a", "an"}, (plain, swapped)
        assert _words(swapped) - _words(plain) <= {stand_ins[k], "a", "an"}, (plain, swapped)
        read, asked = parse_prompt(swapped), parse_prompt(plain)
        assert read.objects == asked.objects and read.background is None, swapped


def test_every_caption_parses_back_to_its_scene(
    scenes: list[Scene], captions: dict[str, list[str]]
) -> None:
    for wording in ("train", "heldout"):
        for scene, caption in zip(scenes, captions[wording], strict=True):
            parsed = parse_prompt(caption)
            assert parsed.background == scene.background, caption
            assert [(o.colour, o.shape, o.motion) for o in parsed.objects] == [
                (o.colour, o.shape, o.motion) for o in scene.objects
            ], caption
            for found, obj in zip(parsed.objects, scene.objects, strict=True):
                assert found.size in (None, obj.size), caption
    sizes_named = [o.size for c in captions["train"] for o in parse_prompt(c).objects]
    assert "small" in sizes_named and "large" in sizes_named and None in sizes_named


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        (
            "a red circle moving right on a black background",
            ParsedPrompt("black", (PromptObject("red", "circle", "right", None),)),
        ),
        (
            "A big blue ball bouncing up and down, grey background",
            ParsedPrompt("gray", (PromptObject("blue", "circle", "bouncing", "large"),)),
        ),
        (
            "small green triangle, still",
            ParsedPrompt(None, (PromptObject("green", "triangle", "still", "small"),)),
        ),
        (
            "Left-moving white square over navy",
            ParsedPrompt("navy", (PromptObject("white", "square", "left", None),)),
        ),
        (
            "A yellow square falling down and a purple circle going up, navy backdrop",
            ParsedPrompt(
                "navy",
                (
                    PromptObject("yellow", "square", "down", None),
                    PromptObject("purple", "circle", "up", None),
                ),
            ),
        ),
        (
            "an orange triangle that doesn't move",
            ParsedPrompt(None, (PromptObject("orange", "triangle", "still", None),)),
        ),
    ],
)
def test_parses_plain_user_prompts(prompt: str, expected: ParsedPrompt) -> None:
    assert parse_prompt(prompt) == expected


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("a circle moving left", "no object colour"),
        ("a red thing moving left", "no shape"),
        ("a red circle on a black background", "no motion"),
        ("a red circle moving left on a white background", "not a Shapes World background"),
        ("", "no object colour"),
    ],
)
def test_unparseable_prompts_say_what_is_missing(prompt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_prompt(prompt)


def test_same_generator_gives_same_caption_and_bad_wording_is_refused() -> None:
    scene = sample_scene(np.random.default_rng(0), "64x64")
    a = write_caption(scene, np.random.default_rng(1), "train")
    assert a == write_caption(scene, np.random.default_rng(1), "train")
    others = {write_caption(scene, np.random.default_rng(k), "train") for k in range(20)}
    assert len(others) > 5
    with pytest.raises(ValueError, match="wording"):
        write_caption(scene, np.random.default_rng(0), "fancy")  # type: ignore[arg-type]


def test_captions_can_be_written_in_given_templates(scenes: list[Scene]) -> None:
    """The prompt reader's frames-out check writes training captions in chosen frames."""
    frames = {1: ("clip: {obj} {mp}, {bg} {bn}",), 2: ("{bg} {bn}: {obj1} {mp1}, {obj2} {mp2}",)}
    for k, scene in enumerate(scenes[:100]):
        caption = write_caption(scene, np.random.default_rng(k), templates=frames)
        if len(scene.objects) == 1:
            assert caption.startswith("clip: "), caption
        else:
            assert ": " in caption and not caption.startswith("clip"), caption
        read = [(o.colour, o.shape, o.motion) for o in parse_prompt(caption).objects]
        assert read == [(o.colour, o.shape, o.motion) for o in scene.objects], caption
    with pytest.raises(ValueError, match="no caption templates for 2 objects"):
        two = next(s for s in scenes if len(s.objects) == 2)
        write_caption(two, np.random.default_rng(0), templates={1: frames[1]})


def test_object_prompts_cut_each_object_out_in_the_prompts_own_words(
    scenes: list[Scene], captions: dict[str, list[str]]
) -> None:
    """Every two-object caption of both wordings: one prompt per object, naming that object
    alone (its colour, shape, motion and size word) and the background, in the caption's
    words."""
    two = 0
    for wording in ("train", "heldout"):
        for scene, caption in zip(scenes, captions[wording], strict=True):
            parts = object_prompts(caption)
            if len(scene.objects) == 1:
                assert parts == (caption,)
                continue
            two += 1
            whole = parse_prompt(caption)
            assert len(parts) == 2, caption
            for part, obj in zip(parts, whole.objects, strict=True):
                assert parse_prompt(part) == ParsedPrompt(whole.background, (obj,)), (caption, part)
                assert _words(part) <= _words(caption), (caption, part)
                assert "  " not in part and not part.startswith((",", ";", ":")), part
    assert two > 500


@pytest.mark.parametrize(
    ("prompt", "parts"),
    [
        (
            "A yellow square falling down and a purple circle going up, navy backdrop",
            (
                "A yellow square falling down, navy backdrop",
                "A purple circle going up, navy backdrop",
            ),
        ),
        (
            "a red circle moving right, a small blue square moving up and a green triangle "
            "bouncing on the floor on a gray background",
            (
                "a red circle moving right on a gray background",
                "a small blue square moving up on a gray background",
                "a green triangle bouncing on the floor on a gray background",
            ),
        ),
        (  # a letter whose lower case is longer: the cuts still land in the prompt's own text
            "İstanbul: a red circle moving right and a blue square rising on a black background",
            (
                "İstanbul: a red circle moving right on a black background",
                "İstanbul: a blue square rising on a black background",
            ),
        ),
        ("a red circle moving right on a black background", None),
        ("a circle and a square", None),  # nothing the parser reads: the prompt as it is
    ],
)
def test_object_prompts_of_user_prompts(prompt: str, parts: tuple[str, ...] | None) -> None:
    assert object_prompts(prompt) == (parts or (prompt,))
