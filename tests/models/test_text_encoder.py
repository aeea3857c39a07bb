"""The text encoder: the native MiniLM equals transformers' BertModel, loads without importing
transformers, pads and truncates as callers expect; tiny_random builds a small random twin."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vidora.models.text_encoder import BertEncoder, TextEncoder, builtin_path, hf_bert_key

PROMPTS = [
    "a red circle moving left on a black background",
    "",
    "Blue!",
    "a small green triangle bouncing " * 20,  # longer than max_length: truncated
    "Ünïcödé café, naïve 東京",
]


@pytest.fixture(scope="module")
def minilm() -> TextEncoder:
    return TextEncoder.load("minilm")


@pytest.mark.slow  # imports transformers and loads MiniLM twice (~5-15 s on a busy CPU)
def test_native_minilm_equals_transformers(minilm: TextEncoder) -> None:
    from transformers import AutoModel, AutoTokenizer

    path = builtin_path()
    tokenizer, model = AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path).eval()
    tokens = tokenizer(
        PROMPTS, padding=True, truncation=True, max_length=minilm.max_length, return_tensors="pt"
    )
    with torch.no_grad():
        expected = model(**tokens).last_hidden_state

    states, mask = minilm.encode(PROMPTS)
    ids = torch.tensor([e.ids for e in minilm.tokenizer.encode_batch(PROMPTS)])
    assert torch.equal(ids, tokens["input_ids"])
    assert torch.equal(mask, tokens["attention_mask"].bool())
    assert states.dtype == torch.float32 and states.shape == expected.shape
    torch.testing.assert_close(states, expected, atol=1e-4, rtol=1e-4)

    # Any other folder takes the transformers branch: the packaged folder by path agrees too.
    via_path = TextEncoder.load(str(path))
    path_states, path_mask = via_path.encode(PROMPTS)
    assert torch.equal(path_mask, mask)
    torch.testing.assert_close(path_states, states, atol=1e-4, rtol=1e-4)
    for special_tokens in (True, False):  # the ids each branch reads, as the wording probe counts
        assert via_path.token_ids(PROMPTS[0], special_tokens) == minilm.token_ids(
            PROMPTS[0], special_tokens
        )
    assert minilm.token_ids(PROMPTS[0]) == ids[0][mask[0]].tolist()


def test_minilm_and_tiny_random_load_without_transformers() -> None:
    code = (
        "import sys\n"
        "from vidora.models.text_encoder import TextEncoder\n"
        "assert 'transformers' not in sys.modules, 'imported by the module'\n"
        "TextEncoder.tiny_random().encode(['a red circle'])\n"
        "assert 'transformers' not in sys.modules, 'imported by tiny_random'\n"
        "TextEncoder.load('minilm').encode(['a red circle'])\n"
        "assert 'transformers' not in sys.modules, 'imported by load(\"minilm\")'\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_stored_tensor_is_used_but_the_pooler() -> None:
    from safetensors import safe_open

    with safe_open(builtin_path() / "model.safetensors", framework="pt") as f:
        stored = set(f.keys())
    model = BertEncoder.from_pretrained(builtin_path())
    mapped = {hf_bert_key(k) for k in model.state_dict()}
    unused = {k for k in stored - mapped if not k.startswith("pooler.")}
    assert mapped <= stored
    assert unused == {"embeddings.position_ids"}  # a buffer: positions are 0..L-1


def test_minilm_shapes_mask_and_truncation(minilm: TextEncoder) -> None:
    states, mask = minilm.encode(PROMPTS)
    lengths = mask.sum(dim=1).tolist()
    assert minilm.dim == 384 and states.shape == (len(PROMPTS), minilm.max_length, 384)
    assert lengths[1] == 2  # "" is [CLS] [SEP]
    assert lengths[3] == minilm.max_length  # truncated, not dropped
    assert all(mask[i, :n].all() and not mask[i, n:].any() for i, n in enumerate(lengths))
    assert torch.isfinite(states).all()


def test_a_prompt_encodes_the_same_alone_and_padded_in_a_batch(minilm: TextEncoder) -> None:
    alone, alone_mask = minilm.encode([PROMPTS[2]])
    batch, batch_mask = minilm.encode(PROMPTS)
    n = int(alone_mask.sum())
    assert alone.shape[1] == n and int(batch_mask[2].sum()) == n
    torch.testing.assert_close(batch[2, :n], alone[0], atol=1e-5, rtol=1e-5)


def test_tiny_random_is_small_seeded_and_movable() -> None:
    a, b, c = TextEncoder.tiny_random(0), TextEncoder.tiny_random(0), TextEncoder.tiny_random(1)
    assert a.name == "tiny-random" and a.dim == 32 and len(a.model.layers) == 2
    states, mask = a.to("cpu").encode(PROMPTS[:2])
    assert states.shape == (2, mask.shape[1], 32) and mask.dtype == torch.bool
    assert torch.equal(states, b.encode(PROMPTS[:2])[0])
    assert not torch.allclose(states, c.encode(PROMPTS[:2])[0])
    assert TextEncoder.tiny_random(dim=48).encode(["x"])[0].shape[-1] == 48
    assert not any(p.requires_grad for p in a.parameters())


def test_bad_input_says_what_to_fix(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no folder at"):
        TextEncoder.load(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="even"):
        TextEncoder.tiny_random(dim=31)
    with pytest.raises(ValueError, match="at least one prompt"):
        TextEncoder.tiny_random().encode([])


def test_a_vocabulary_subset_stands_in_for_minilm_on_shapes_world_captions(
    minilm: TextEncoder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    from vidora.models.text_encoder import BUILTIN_ENV, write_vocabulary_subset
    from vidora.world.captions import caption_vocabulary, write_caption
    from vidora.world.scene import sample_scene

    kept = write_vocabulary_subset(builtin_path(), tmp_path / "subset", caption_vocabulary())
    assert 100 < kept < 1000  # a few hundred of MiniLM's 30,522 tokens
    stored = sum(f.stat().st_size for f in (tmp_path / "subset").iterdir())
    whole = sum(f.stat().st_size for f in builtin_path().iterdir() if f.is_file())
    assert stored < whole / 3

    monkeypatch.setenv(BUILTIN_ENV, str(tmp_path / "subset"))
    subset = TextEncoder.load("minilm")  # the name configs and releases store
    assert subset.name == "minilm"
    rng = np.random.default_rng(0)
    captions = [
        write_caption(
            sample_scene(rng, "64x64", held_out=("exclude", "require")[i % 2]),
            rng,
            ("train", "heldout")[i % 3 == 0],
        )
        for i in range(300)
    ]
    for start in range(0, len(captions), 100):  # every caption of both wordings encodes
        batch = captions[start : start + 100]
        (expected, mask), (got, got_mask) = minilm.encode(batch), subset.encode(batch)
        assert torch.equal(mask, got_mask)
        error = ((got - expected) * mask[..., None]).norm() / (expected * mask[..., None]).norm()
        assert error < 2e-3  # float16 weights; the whole encoder's float32 states
    with pytest.raises(ValueError, match="vocabulary subset of .* tokens, without 'elephant'"):
        subset.encode(["a red elephant moving left on a black background"])


def test_the_subset_command_writes_one_and_refuses_to_cut_a_subset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from vidora.cli import app

    texts = tmp_path / "captions.txt"
    texts.write_text("a purple elephant juggling\n", encoding="utf-8")
    result = CliRunner().invoke(
        app, ["train", "text-subset", str(tmp_path / "s"), "--texts", str(texts)]
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("VIDORA_MINILM", str(tmp_path / "s"))
    subset = TextEncoder.load("minilm")
    states, _ = subset.encode(["a purple elephant juggling"])
    assert states.shape[0] == 1 and torch.isfinite(states).all()  # its words were kept
    # and the stand-ins a run's `unknown_background` draws from the whole vocabulary
    from vidora.models.text_encoder import builtin_vocabulary
    from vidora.world.captions import stand_in_words

    whole = builtin_vocabulary()  # the subset keeps the tokenizer whole
    stand_ins = stand_in_words(whole)
    readable = set(subset.vocabulary())
    assert set(stand_ins) <= readable and len(readable) < len(whole) / 10
    assert set(stand_in_words(readable)) <= readable
    result = CliRunner().invoke(app, ["train", "text-subset", str(tmp_path / "t")])
    assert result.exit_code == 2 and "unset VIDORA_MINILM" in result.output
