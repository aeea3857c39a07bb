"""The text-encoder probe: phrases found in captions, a ridge readout against known answers."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from vidora.cli import app
from vidora.eval.wording import (
    PHRASES,
    Example,
    named_phrase,
    phrase_tokens,
    probe_attribute,
    wording_probe,
)
from vidora.models.text_encoder import TextEncoder


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder.tiny_random()


def test_named_phrase_is_the_longest_whole_word_match() -> None:
    match = named_phrase("A red disc rises against a jet black canvas.", ("black", "jet black"))
    assert match is not None and match.group() == "jet black"
    assert named_phrase("a blackish canvas", ("black",)) is None  # whole words only
    assert named_phrase("Ball, rising", ("ball",)).group() == "Ball"  # case aside


def test_phrase_tokens_are_the_phrases_own(encoder: TextEncoder) -> None:
    caption = "Here we see a tiny red orb ricocheting off the floor; everything behind it is slate."
    for phrase in ("orb", "ricocheting off the floor", "slate", "tiny"):
        span = phrase_tokens(encoder, caption, named_phrase(caption, (phrase,)))
        ids = encoder.token_ids(caption)[span]
        assert encoder.tokenizer.decode(ids) == phrase, phrase


def _examples(centres: dict[str, torch.Tensor], phrases: int, noise: float, seed: int) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [
        Example(concept, f"{concept}-{k}", centre + noise * torch.randn(16, generator=generator))
        for concept, centre in centres.items()
        for k in range(phrases)
        for _ in range(5)
    ]


def test_the_readout_names_held_out_phrases_near_their_concepts() -> None:
    generator = torch.Generator().manual_seed(0)
    centres = {c: torch.randn(16, generator=generator) for c in ("left", "right", "up")}
    train = _examples(centres, phrases=3, noise=0.3, seed=10)
    near = probe_attribute(train, _examples(centres, phrases=1, noise=0.3, seed=11))
    assert near["heldout_accuracy"] == 1.0 and near["synonym_out_accuracy"] == 1.0
    assert near["chance"] == pytest.approx(1 / 3) and near["heldout_examples"] == 15
    # Held-out phrases whose states say nothing of their concept are read at chance or so.
    generator = torch.Generator().manual_seed(12)
    lost = [
        Example(e.concept, e.phrase, torch.randn(16, generator=generator))
        for e in _examples(centres, phrases=20, noise=0.0, seed=13)
    ]
    assert probe_attribute(train, lost)["heldout_accuracy"] < 0.6  # 300 examples, chance 1/3


def test_wording_probe_reports_every_attribute(encoder: TextEncoder) -> None:
    figures = wording_probe(encoder, count=40, seed=0)
    assert set(figures) == set(PHRASES)
    for attribute, f in figures.items():
        assert 0.0 <= f["heldout_accuracy"] <= 1.0 and 0.0 <= f["synonym_out_accuracy"] <= 1.0
        assert f["chance"] == pytest.approx(1 / len(PHRASES[attribute]["train"]))
    assert figures["motion"]["heldout_examples"] == 40  # every caption names its motion
    assert 0 < figures["size"]["heldout_examples"] < 40  # size words are optional


def test_eval_text_cli(tmp_path) -> None:  # noqa: ANN001
    out = tmp_path / "probe.json"
    result = CliRunner().invoke(
        app, ["eval-text", "--text-encoder", "tiny-random", "-n", "20", "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text())["motion"]["heldout_examples"] == 20
    missing = CliRunner().invoke(app, ["eval-text", "--text-encoder", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no folder" in missing.output
    assert "Traceback" not in missing.output


@pytest.mark.slow
def test_minilm_carries_held_out_shape_and_motion_words() -> None:
    """MODEL.md's figures: MiniLM's states name held-out shapes and motions well above chance."""
    figures = wording_probe(TextEncoder.load(), count=400, seed=0)
    assert figures["motion"]["heldout_accuracy"] >= 0.9  # chance 1/6
    assert figures["shape"]["heldout_accuracy"] >= 0.8  # chance 1/3
