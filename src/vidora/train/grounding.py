"""The grounding loss: each object's words read where the object is drawn.

v16 draws two-object prompts with each object's motion and shape as often the other object's as
its own (MODEL.md, "Two objects: which is which"): it hears the words but does not bind them to
the object they describe. As TokenCompose (Wang et al., 2024) does with segmentation masks, this
charges the DiT's cross-attention for where each word of an object's phrase is read: of the
attention a word gets from the clip's tokens, the share from tokens outside that object is the
loss. Shapes World gives the masks exactly (`vidora.train.attributes.token_labels`) and the
captions say which characters name which object (`write_caption_with_spans`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vidora.world.spec import COLOURS

Phrase = tuple[int, int, int]
"""One object's phrase in a caption: its colour's index in `COLOURS`, and the characters
[start, end) that name it and its motion."""


@dataclass
class Grounding:
    """Which caption tokens name which object, for a batch (as `TextEncoder.encode` read it)."""

    words: torch.Tensor
    """(B, K, L) bool: token l of caption b belongs to the phrase of the caption's k-th object."""
    colours: torch.Tensor
    """(B, K) long: the k-th object's colour index (-1: no k-th object, or a dropped caption)."""


def ground_phrases(
    phrases: list[tuple[Phrase, ...]],
    offsets: list[list[tuple[int, int]]],
    kept: list[bool],
    max_objects: int = 2,
) -> Grounding:
    """`Grounding` of a batch: each caption's `phrases`, its tokens' character `offsets`
    (`TextEncoder.token_offsets`), and whether its caption was `kept` (not dropped for
    classifier-free guidance). A token is in a phrase when its characters lie inside it."""
    length = max(map(len, offsets))
    words = torch.zeros(len(phrases), max_objects, length, dtype=torch.bool)
    colours = torch.full((len(phrases), max_objects), -1, dtype=torch.long)
    for b, (objects, token_chars, keep) in enumerate(zip(phrases, offsets, kept, strict=True)):
        if not keep:
            continue
        for k, (colour, start, end) in enumerate(objects):
            colours[b, k] = colour
            for position, (first, last) in enumerate(token_chars):
                words[b, k, position] = last > first and start <= first and last <= end
    return Grounding(words, colours)


def grounding_loss(maps: torch.Tensor, grounding: Grounding, labels: torch.Tensor) -> torch.Tensor:
    """Mean over blocks, objects and their phrase's tokens of the share of attention a token gets
    from outside its object: maps (depth, B, N, L) the cross-attention weights
    (`DiT.forward(cross_maps=True)`), labels (B, A, F, rows, columns) each DiT token's object
    attributes (the first: colour, which tells a clip's objects apart). Objects not in view and
    dropped captions are left out; zero when none is left."""
    colour = labels[:, 0].flatten(1)  # (B, N) the covering object's colour, -1 where none
    if colour.shape[1] != maps.shape[2]:
        raise ValueError(f"{colour.shape[1]} token labels for {maps.shape[2]} tokens")
    colours = grounding.colours.to(maps.device)  # (B, K)
    inside = (colour[:, None, :] == colours[:, :, None]) & (colours[:, :, None] >= 0)  # (B, K, N)
    words = grounding.words.to(maps.device)  # (B, K, L)
    words = words & inside.any(-1, keepdim=True)  # an object out of view has nowhere to be read
    if not words.any():
        return maps.sum() * 0.0  # keeps the graph whole for DDP
    received = maps.sum(2)  # (depth, B, L) the attention each token gets from the clip
    from_inside = torch.einsum("dbnl,bkn->dbkl", maps, inside.to(maps.dtype))  # (depth, B, K, L)
    share = from_inside / received[:, :, None, :].clamp_min(1e-6)  # (depth, B, K, L)
    outside = (1.0 - share) * words  # (depth, B, K, L)
    return outside.sum() / (words.sum() * maps.shape[0])


def phrase_colours(
    colour_names: list[str], spans: tuple[tuple[int, int], ...]
) -> tuple[Phrase, ...]:
    """A caption's phrases from its objects' colours and `write_caption_with_spans`'s spans."""
    return tuple(
        (list(COLOURS).index(name), start, end)
        for name, (start, end) in zip(colour_names, spans, strict=True)
    )
