"""The prompt reader: fitted on training captions only, it reads prompts into objects, rewrites
them in the training wording, travels in a release file, and is what the DiT is given."""

from __future__ import annotations

import re

import pytest
import torch

from vidora.models.prompt_reader import (
    KINDS,
    PromptReader,
    Reading,
    ReadObject,
    in_context,
    kind_features,
    template_states,
)
from vidora.models.text_encoder import TextEncoder
from vidora.pipelines import TextToVideoPipeline
from vidora.train.prompt_reader import (
    FRAMES_OUT,
    TEMPLATED_KINDS,
    concept_templates,
    fit_prompt_reader,
    frames_out_reading,
    label_captions,
    left_out_synonyms,
    training_captions,
    training_phrases,
)
from vidora.world.captions import (
    BACKGROUND_WORDS,
    MOTION_PHRASES,
    SHAPE_WORDS,
    SIZE_WORDS,
    TEMPLATES,
)

TWO = "a little red disc sliding to the left and a blue box rising on a navy backdrop"


@pytest.fixture(scope="module")
def fitted() -> tuple[TextEncoder, PromptReader, dict]:
    """A reader fitted on a tiny random encoder: its states tell words apart (and no synonym
    from another, so the penalty is given small), and the training words are read back."""
    encoder = TextEncoder.tiny_random(0, dim=64)
    reader, report = fit_prompt_reader(encoder, count=600, seed=0, penalties=(0.1, 1.0))
    return encoder, reader, report


def test_it_is_fitted_on_the_training_wording_alone() -> None:
    table = training_phrases()
    heldout = [
        p
        for words in (SHAPE_WORDS, BACKGROUND_WORDS, SIZE_WORDS)
        for phrases in words["heldout"].values()
        for p in phrases
    ]
    heldout += [p for forms in MOTION_PHRASES["heldout"].values() for f in forms for p in f]
    assert not set(heldout) & set(table)
    assert table["drifting leftward"] == "motion:left" and table["box"] == "shape:square"
    # Labelling finds the longest phrase: "pitch black" is one background, not "black".
    (spans,) = label_captions(["a red dot sinks on a pitch black canvas."], table)
    assert [p for _, _, p in spans] == ["red", "dot", "sinks", "pitch black"]


def test_captions_can_be_drawn_without_some_phrases() -> None:
    without = left_out_synonyms()
    assert {"dot", "pyramid", "travels left", "midnight"} <= without
    assert not {"circle", "moving left", "black"} & without  # each concept keeps a phrase
    table = training_phrases()
    captions = training_captions(200, seed=0, without=without)
    spans = label_captions([c for c, _ in captions], table)
    assert all(phrase not in without for caption in spans for _, _, phrase in caption)
    # Every object of every scene is named in its caption.
    assert all(
        sum(table[p].startswith("colour:") for _, _, p in caption) == len(scene.objects)
        for caption, (_, scene) in zip(spans, captions, strict=True)
    )


def test_it_reads_training_words_back(fitted) -> None:
    encoder, reader, report = fitted
    assert report["penalties"]["kind"]["chosen"] in (0.1, 1.0)
    reading = reader.read(encoder, TWO)
    assert reading is not None
    assert reading.objects == (
        ReadObject("red", "circle", "left", "small"),
        ReadObject("blue", "square", "up", None),
    )
    assert reading.background == "navy"
    # Rewritten in one training template, whole and per object.
    assert reading.prompt == (
        "A small red circle moving left and a blue square moving up on a navy background."
    )
    assert reading.object_prompts == (
        "A small red circle moving left on a navy background.",
        "A blue square moving up on a navy background.",
    )


def test_a_prompt_it_cannot_read_is_not_read(fitted) -> None:
    encoder, reader, _ = fitted
    assert reader.read(encoder, "a red disc on a navy backdrop") is None  # no motion
    assert reader.read(encoder, "a disc sinking on a navy backdrop") is None  # no colour
    with pytest.raises(ValueError, match="64-d token states"):
        reader.read(TextEncoder.tiny_random(0, dim=32), TWO)


def test_the_templates_are_training_captions_with_a_slot() -> None:
    table = training_phrases()
    for kind, word in (("shape", "disc"), ("motion", "sinking"), ("size", "little")):
        templates = concept_templates(kind)
        assert len(templates) == len(TEMPLATES["train"][1])
        assert all(t.count("{}") == 1 for t in templates)
        # Filled with a training phrase of its kind, each is a one-object training caption:
        # the labeller finds the phrase, a colour, a shape, a motion and a background in it.
        for caption in label_captions([t.replace("{}", word) for t in templates], table):
            found = [phrase for _, _, phrase in caption]
            assert word in found
            assert {"colour", "shape", "motion", "background"} <= {
                table[p].split(":")[0] for p in found
            }


def test_template_states_are_the_words_unit_states_in_the_sentence() -> None:
    encoder = TextEncoder.tiny_random(0, dim=64)
    states = template_states(encoder, ["a red {}", "{} on a black background"], ["box", "big disc"])
    assert states.shape == (2, 65)
    assert torch.allclose(states[:, :64].norm(dim=1), torch.ones(2))
    assert states[:, 64].tolist() == [1.0, 1.0]
    # "big disc" is read where it stands: the mean of its tokens' states there.
    tokens, _ = encoder.encode(["big disc on a black background"])  # (1, L, 64)
    offsets = encoder.token_offsets(["big disc on a black background"])[0]
    own = [i for i, (a, b) in enumerate(offsets) if a < b and b <= len("big disc")]
    want = torch.nn.functional.normalize(tokens[0, own].mean(0), dim=0)
    assert torch.allclose(states[1, :64], want, atol=1e-6)


def test_templated_kinds_are_fitted_and_can_be_left_out(fitted) -> None:
    encoder, reader, report = fitted
    assert set(reader.templates) == set(TEMPLATED_KINDS)
    assert reader.templates["shape"] == concept_templates("shape")
    assert {"shape", "motion", "size"} <= set(report["penalties"])
    # Without templates every kind is named in the prompt (v18's reader), and still reads.
    plain, _ = fit_prompt_reader(encoder, count=600, seed=0, penalties=(0.1, 1.0), templated=())
    assert plain.templates == {}
    assert plain.read(encoder, TWO) == reader.read(encoder, TWO)
    with pytest.raises(ValueError, match="one {} for the phrase"):
        PromptReader(
            reader.kind_weights,
            reader.concept_weights,
            reader.concepts,
            {},
            templates={"shape": ["a red shape"]},
        )


def test_context_puts_each_state_beside_its_neighbours() -> None:
    states = torch.arange(6.0).reshape(3, 2)  # (L=3, D=2)
    near = in_context(states)
    assert near.shape == (3, 6)
    assert near[1].tolist() == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    assert near[0, :2].tolist() == [0.0, 0.0] and near[2, 4:].tolist() == [0.0, 0.0]
    assert torch.equal(kind_features(states, "neighbours"), near)
    assert torch.equal(kind_features(states, "own"), states)


def test_the_kind_readout_reads_own_states_or_neighbours(fitted, tmp_path) -> None:
    encoder, reader, report = fitted
    assert reader.kind_context == report["kind_context"] == "neighbours"
    assert reader.kind_weights.shape == (3 * 64 + 1, len(KINDS) + 1)
    own, own_report = fit_prompt_reader(
        encoder, count=600, seed=0, penalties=(0.1, 1.0), kind_context="own", fallback_context=None
    )
    assert own.fallback_kind is None
    assert own.kind_weights.shape == (64 + 1, len(KINDS) + 1)
    assert own_report["kind_context"] == "own"
    assert own.read(encoder, TWO) == reader.read(encoder, TWO)
    # A release file says which; v18's and v19's say none and read with neighbours.
    loaded = PromptReader.from_release(own.tensors(), own.config())
    assert loaded.kind_context == "own" and loaded.read(encoder, TWO) == own.read(encoder, TWO)
    config = reader.config()
    del config["kind_context"]
    assert PromptReader.from_release(reader.tensors(), config).kind_context == "neighbours"
    with pytest.raises(ValueError, match="kind_context"):
        PromptReader(
            reader.kind_weights, reader.concept_weights, reader.concepts, {}, kind_context="both"
        )
    with pytest.raises(ValueError, match="need 3D \\+ 1 rows"):  # own-state weights
        PromptReader(
            own.kind_weights,
            reader.concept_weights,
            reader.concepts,
            {},
            kind_context="neighbours",
        )


def test_a_second_kind_readout_reads_what_the_first_leaves_unread(fitted, tmp_path) -> None:
    encoder, reader, report = fitted
    assert report["fallback_kind_context"] == "own" and reader.fallback_kind is not None
    context, weights = reader.fallback_kind
    assert context == "own" and weights.shape == (64 + 1, len(KINDS) + 1)
    assert "kind_fallback" in report["penalties"]
    # A first readout that calls every word "other" reads nothing; the second then reads.
    blind = torch.zeros_like(reader.kind_weights)
    blind[-1, 0] = 1.0
    config = reader.config()
    tensors = reader.tensors() | {"reader.kind": blind}
    behind = PromptReader.from_release(tensors, config)
    assert behind.fallback_kind is not None and behind.phrases_of(encoder, TWO) == []
    own_alone = PromptReader(
        weights, reader.concept_weights, reader.concepts, reader.phrases, "black",
        reader.backgrounds, reader.templates, "own",
    )  # fmt: skip
    assert behind.read(encoder, TWO) == own_alone.read(encoder, TWO) is not None
    del tensors["reader.kind_fallback"]
    config["fallback_kind_context"] = None
    assert PromptReader.from_release(tensors, config).read(encoder, TWO) is None
    with pytest.raises(ValueError, match="another width"):
        PromptReader(
            reader.kind_weights,
            reader.concept_weights,
            reader.concepts,
            {},
            fallback_kind=("own", weights[32:]),
        )


def test_the_frames_out_check_reads_frames_the_reader_never_saw() -> None:
    encoder = TextEncoder.tiny_random(0, dim=64)
    report = frames_out_reading(encoder, count=600, prompts=60, seed=0)
    left = [t for n in sorted(FRAMES_OUT) for t in TEMPLATES["train"][n][-FRAMES_OUT[n] :]]
    assert report["left_out"] == left and report["prompts"] == 60
    # Even on a tiny random encoder most captions in new frames are read (91.7%): the rules
    # and readouts do not lean on the frames alone.
    assert 0.8 < report["read_right"] <= 1.0 and 0.8 < report["objects_right"] <= 1.0
    # Its reader's own templates hold none of the frames left out.
    kept = {n: TEMPLATES["train"][n][: -FRAMES_OUT[n]] for n in FRAMES_OUT}
    assert len(concept_templates("shape", kept)) == len(kept[1])


def test_wrong_weights_are_refused(fitted) -> None:
    _, reader, _ = fitted
    with pytest.raises(ValueError, match="kind weights"):
        PromptReader(reader.kind_weights[:, :3], reader.concept_weights, reader.concepts, {})
    small = {k: w[:5] for k, w in reader.concept_weights.items()}
    with pytest.raises(ValueError, match="do not fit"):
        PromptReader(reader.kind_weights, small, reader.concepts, {})


def test_the_pipeline_gives_the_dit_the_rewritten_prompt(fitted, tmp_path, monkeypatch) -> None:
    encoder, reader, _ = fitted
    pipe = TextToVideoPipeline.tiny_random(text_dim=64)
    pipe.reader = reader
    encoded: list[list[str]] = []
    encode = pipe._encode_text
    monkeypatch.setattr(pipe, "_encode_text", lambda p: encoded.append(p) or encode(p))
    out = pipe(["a red dot sinking on a black canvas", "a sunset"], seed=[1, 2])
    read = "A red circle moving down on a black background."
    assert encoded == [[read, "a sunset", "", ""]]  # the one it cannot read, as written
    assert [s["read_as"] for s in out.settings] == [read, "a sunset"]
    assert out.settings[0]["prompt"] == "a red dot sinking on a black canvas"

    # The reader travels in the release file and reads the same after loading.
    pipe.save_pretrained(tmp_path / "m.safetensors")
    loaded = TextToVideoPipeline.from_pretrained(tmp_path / "m.safetensors")
    assert loaded.reader is not None
    for kind in KINDS:
        assert torch.equal(loaded.reader.concept_weights[kind], reader.concept_weights[kind])
    assert loaded.reader.templates == reader.templates
    assert loaded.reader.kind_context == reader.kind_context
    assert loaded.reader.read(encoder, TWO) == reader.read(encoder, TWO)


def test_composition_cuts_the_rewritten_prompt(fitted, monkeypatch) -> None:
    from dataclasses import replace

    encoder, reader, _ = fitted
    pipe = TextToVideoPipeline.tiny_random(text_dim=64)
    pipe.reader = reader
    pipe.defaults = replace(pipe.defaults, compose_objects=True)
    encoded: list[list[str]] = []
    encode = pipe._encode_text
    monkeypatch.setattr(pipe, "_encode_text", lambda p: encoded.append(p) or encode(p))
    pipe(TWO, seed=0)
    from vidora.pipelines.composition import TRIES

    second = "A blue square moving up on a navy background."
    first = "A small red circle moving left on a navy background."
    assert encoded == [[first, *[second] * TRIES, *[""] * (1 + TRIES)]]


def test_a_reading_writes_articles_and_sentence_case() -> None:
    phrases = {"shape:circle": "circle", "motion:up": "moving up", "size:large": "large"}
    reading = Reading((ReadObject("orange", "circle", "up", None),), "indigo", phrases)
    assert reading.prompt == "An orange circle moving up on an indigo background."
    assert re.fullmatch(
        r"A large orange circle moving up on an? \w+ background\.",
        Reading((ReadObject("orange", "circle", "up", "large"),), "ebony", phrases).prompt,
    )


def test_the_builtin_reader_reads_words_no_caption_holds() -> None:
    """The shipped reader, on MiniLM: 'rectangle', 'round thing', 'travels to the right',
    'going downwards', 'sphere' and 'plummeting' are in neither wording's captions."""
    pipe = TextToVideoPipeline.from_pretrained()
    assert pipe.reader is not None
    read = pipe.reader.read(pipe.text_encoder, "A green rectangle that travels to the right.")
    assert read is not None and read.objects == (ReadObject("green", "square", "right", None),)
    read = pipe.reader.read(
        pipe.text_encoder, "a yellow round thing going downwards, grey backdrop"
    )
    assert read is not None and read.objects == (ReadObject("yellow", "circle", "down", None),)
    assert read.prompt == "A yellow circle moving down on a grey background."  # grey: kept
    read = pipe.reader.read(pipe.text_encoder, "A red sphere plummeting on a black background.")
    assert read is not None and read.objects == (ReadObject("red", "circle", "down", None),)
    # A background word no caption holds is kept for one object, and for two written as a
    # training word, one canvas for both.
    one = pipe.reader.read(pipe.text_encoder, "A red circle moving right, ebony backdrop.")
    assert one is not None and one.background == "ebony"
    two = "A red circle moving right and a blue square moving up, ebony backdrop."
    read = pipe.reader.read(pipe.text_encoder, two)
    assert read is not None and read.background in ("black", "gray", "navy")
    assert {p.split(" on ")[1] for p in read.object_prompts} == {f"a {read.background} background."}
    # In a sentence frame no training caption has, the first kind readout (each token beside
    # its neighbours) leaves this held-out caption unread; the second (own states) reads it.
    held_out = (
        "Picture a white triangular shape heading to the right side with nothing but indigo "
        "behind it."
    )
    assert pipe.reader.fallback_kind is not None
    assert pipe.reader.read(pipe.text_encoder, held_out) == pipe.reader._read(
        held_out, pipe.reader.phrases_of(pipe.text_encoder, held_out, pipe.reader.fallback_kind)
    )
    assert pipe.reader._read(held_out, pipe.reader.phrases_of(pipe.text_encoder, held_out)) is None
    read = pipe.reader.read(pipe.text_encoder, held_out)
    assert read is not None and read.objects == (ReadObject("white", "triangle", "right", None),)


def test_generate_says_how_it_read_the_prompt(fitted, tmp_path) -> None:
    from typer.testing import CliRunner

    from vidora.cli import app

    _, reader, _ = fitted
    pipe = TextToVideoPipeline.tiny_random(text_dim=64)
    pipe.reader = reader
    release = str(pipe.save_pretrained(tmp_path / "m.safetensors"))
    prompt = "a red dot sinking on a black canvas"
    for flag, said in (("--read", True), ("--no-read", False)):
        out = tmp_path / f"{flag}.mp4"
        args = ["generate", prompt, "-o", str(out), "--checkpoint", release, flag]
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert ("read as: A red circle moving down on a black background." in result.output) is said
        assert out.stat().st_size > 0
