"""A prompt reader: what each word of a prompt names, read off the frozen text encoder's states.

The DiT follows the words it was trained on far better than new words for the same things
(MODEL.md, "Held-out wording"): a "ball ascending" is drawn right a fifth as often as a "circle
rising", though MiniLM's states for the two lie close enough that a linear readout of the
training words names the new ones (`vidora eval-text`). The reader is such a readout, used at
generation time, fitted on the training captions alone (`vidora.train.prompt_reader`), so no
held-out word is ever shown to it:

1. what kind of thing each word names (colour, shape, motion, size, background or nothing), one
   ridge map from the word's token states beside their neighbours' (a shape word follows a
   colour word). Where that leaves the prompt unread, a second map, of each token's own state
   alone, reads it again (v20): the neighbours mislead in sentence frames no training caption
   has, and alone the own state takes new nouns for background words (MODEL.md, "v20");
2. consecutive words of one kind make a phrase (with up to two short plain words inside it:
   "sliding *to the* left"; punctuation ends one), and one ridge map per kind names the
   phrase's concept. Colours and backgrounds are named from the phrase's tokens' mean state in
   the prompt. An object's shape, motion and size are named from the phrase's own words set in
   the training templates ("red {}, moving left, black background") and re-encoded: the same
   words in the same places whatever the prompt says around them, so a new word is read among
   the sentences where its synonyms were learned, not pulled towards its prompt's other words;
3. each colour word starts an object, whose shape and motion are the first such phrases before
   the next colour word (a colour word with no shape names the background: "indigo scenery").

A prompt it reads is rewritten in one training template ("A small red circle moving up on a
gray background."), one such prompt per object for the object-by-object composition, with each
object's colour for cutting a given frame; a prompt it cannot read (no colour, an object without
a shape or a motion) is drawn as written.

Background words are kept as written, except that where a prompt names several objects a
background word the DiT was not trained on is written as the training word for what the reader
reads it as. MiniLM's states carry held-out background words poorly (a readout names them at
chance), and alone the DiT draws a Shapes World canvas for a word it cannot read; but the objects
of a composed prompt are each drawn alone, and on such a word each picks its own canvas (an
object joined from another canvas changes colour).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from vidora.models.text_encoder import TextEncoder

KINDS: tuple[str, ...] = ("colour", "shape", "motion", "size", "background")
"""What a word can name; every other word is "other"."""

KIND_CONTEXTS: tuple[str, ...] = ("own", "neighbours")
"""What the kind readout reads of each token: its own state, or it beside its neighbours'."""

GAP = 2
"""Plain words ("to the") that may stand inside one phrase."""
SHORT = 3
"""The longest plain word (in letters) that may."""


@dataclass(frozen=True)
class ReadObject:
    """One object as the reader read it: concepts (size None when the prompt does not say)."""

    colour: str
    shape: str
    motion: str
    size: str | None


@dataclass(frozen=True)
class Reading:
    """What a prompt asks for, and the same in the words the DiT was trained on."""

    objects: tuple[ReadObject, ...]
    background: str
    """The prompt's own words for the background ("pitch black", "slate"), but where it names
    several objects and the DiT does not know the words, the training word for what the reader
    reads them as; the default when it names none."""
    phrases: dict[str, str]
    """label -> the training phrase written for it ("motion:up" -> "moving up")."""

    def object_phrase(self, obj: ReadObject) -> str:
        """'a small red circle moving up'."""
        words = [self.phrases[f"size:{obj.size}"]] if obj.size else []
        words += [obj.colour, self.phrases[f"shape:{obj.shape}"]]
        noun = " ".join(words)
        return f"{_article(noun)} {noun} {self.phrases[f'motion:{obj.motion}']}"

    def _sentence(self, objects: tuple[ReadObject, ...]) -> str:
        things = " and ".join(self.object_phrase(o) for o in objects)
        text = f"{things} on {_article(self.background)} {self.background} background."
        return text[0].upper() + text[1:]

    @property
    def prompt(self) -> str:
        """The whole prompt: 'A red circle moving up and a blue square sinking on a black
        background.' (a training template's words)."""
        return self._sentence(self.objects)

    @property
    def object_prompts(self) -> tuple[str, ...]:
        """One prompt per object, each as a one-object training caption."""
        return tuple(self._sentence((o,)) for o in self.objects)


@dataclass(frozen=True)
class _Phrase:
    """Consecutive words the reader reads as naming one thing."""

    kind: str
    concept: str
    start: int
    end: int
    """Characters [start, end) of the prompt."""
    state: torch.Tensor = field(compare=False, repr=False)
    """The mean of its tokens' states, with a 1 for the bias: (D + 1,)."""


class PromptReader:
    """Two ridge readouts of token states: what kind of thing each word names (or "other"),
    then, for each phrase of one kind, which concept it names (from its mean state in the
    prompt, or, for the kinds `templates` names, in those sentences)."""

    def __init__(
        self,
        kind_weights: torch.Tensor,
        concept_weights: dict[str, torch.Tensor],
        concepts: dict[str, list[str]],
        phrases: dict[str, str],
        default_background: str = "black",
        backgrounds: tuple[str, ...] = (),
        templates: dict[str, list[str]] | None = None,
        kind_context: str = "neighbours",
        fallback_kind: tuple[str, torch.Tensor] | None = None,
    ):
        # (D + 1, 1 + kinds) reading a token's own state, (3D + 1, ...) beside its neighbours':
        # the last row is the bias.
        self.kind_context = kind_context
        self.kind_weights = kind_weights.float()
        self.dim = _kind_readout_dim(kind_context, kind_weights)
        """The width of the token states it reads."""
        self.fallback_kind: tuple[str, torch.Tensor] | None = None
        """A second kind readout (context, weights), read with where the first leaves a prompt
        unread: v20's own-state readout behind v19's, which reads new nouns by their neighbours
        but misses words in sentence frames no training caption has."""
        if fallback_kind is not None:
            context, weights = fallback_kind
            if _kind_readout_dim(context, weights) != self.dim:
                raise ValueError("the fallback kind readout reads states of another width")
            self.fallback_kind = (context, weights.float())
        self.concept_weights = {k: w.float() for k, w in concept_weights.items()}  # (D + 1, C)
        for kind in KINDS:
            if concept_weights[kind].shape != (self.dim + 1, len(concepts[kind])):
                raise ValueError(f"{kind} weights do not fit its {len(concepts[kind])} concepts")
        self.concepts = {k: list(v) for k, v in concepts.items()}
        self.phrases = dict(phrases)
        self.default_background = default_background
        self.backgrounds = tuple(backgrounds)
        """The background words the DiT was trained on: kept as the prompt writes them."""
        self.templates = {k: list(v) for k, v in (templates or {}).items()}
        """kind -> sentences with a {} for a phrase of it, in which the phrase is re-encoded
        to name its concept (`template_states`); kinds not here are named in the prompt."""
        for kind, sentences in self.templates.items():
            if kind not in KINDS or not sentences or any(t.count("{}") != 1 for t in sentences):
                raise ValueError(f"templates for {kind!r}: each needs one {{}} for the phrase")

    @torch.inference_mode()
    def read(self, encoder: TextEncoder, text: str) -> Reading | None:
        """The objects and background `text` asks for, or None when it names no colour or an
        object lacks a shape or a motion (the prompt is then drawn as written), whichever kind
        readout it reads with."""
        encoded = self._token_states(encoder, text)  # once for both kind readouts
        reading = self._read(text, self._phrases(encoder, text, encoded))
        if reading is None and self.fallback_kind is not None:
            phrases = self._phrases(encoder, text, encoded, self.fallback_kind)
            reading = self._read(text, phrases)
        return reading

    def _read(self, text: str, phrases: list[_Phrase]) -> Reading | None:
        """`read`, from the prompt's phrases."""
        # A colour word with no shape before the next one names no object: it is the
        # background's ("indigo scenery, and in view are ..."), if no other word is.
        colours = [k for k, p in enumerate(phrases) if p.kind == "colour"]
        ends = colours[1:] + [len(phrases)] if colours else []
        bare = [
            k
            for k, end in zip(colours, ends, strict=True)
            if all(p.kind != "shape" for p in phrases[k + 1 : end])
        ]
        background = next((p for p in phrases if p.kind == "background"), None)
        if background is None and bare:
            background = phrases[bare[0]]
        phrases = [p for k, p in enumerate(phrases) if k not in bare]
        starts = [k for k, p in enumerate(phrases) if p.kind == "colour"]
        if not starts:
            return None
        objects = []
        for n, start in enumerate(starts):
            end = starts[n + 1] if n + 1 < len(starts) else len(phrases)
            own = phrases[start + 1 : end]
            shape = next((p.concept for p in own if p.kind == "shape"), None)
            motion = next((p.concept for p in own if p.kind == "motion"), None)
            if motion is None and n == 0:  # "rising, a red circle ..."
                motion = next((p.concept for p in phrases[:start] if p.kind == "motion"), None)
            if shape is None or motion is None:
                return None
            before = phrases[start - 1] if start > 0 else None
            size = next((p.concept for p in own[:1] if p.kind == "size"), None)
            if before is not None and before.kind == "size":
                size = before.concept
            objects.append(ReadObject(phrases[start].concept, shape, motion, size))
        # Background words the DiT knows are kept, and so are others where one object is drawn
        # (the DiT was trained to draw a Shapes World canvas for a word it cannot read). Where
        # several are, each drawn alone, an unknown word is written as what the reader reads it
        # as, so that every object is drawn on the same canvas.
        words = self.default_background
        if background is not None:
            words = text[background.start : background.end].lower()
            if words not in self.backgrounds and len(objects) > 1:
                scores = background.state @ self.concept_weights["background"]  # (C,)
                concept = self.concepts["background"][int(scores.argmax())]
                words = self.phrases[f"background:{concept}"]
        return Reading(tuple(objects), words, self.phrases)

    def phrases_of(
        self,
        encoder: TextEncoder,
        text: str,
        kind_readout: tuple[str, torch.Tensor] | None = None,
    ) -> list[_Phrase]:
        """The prompt's words grouped into phrases, each with what it names, left to right
        (each word's kind read by the reader's kind readout, or by `kind_readout`: context,
        weights)."""
        return self._phrases(encoder, text, self._token_states(encoder, text), kind_readout)

    def _token_states(
        self, encoder: TextEncoder, text: str
    ) -> tuple[torch.Tensor, list[tuple[int, int]]]:
        """The prompt's token states (L, D) and each token's characters [start, end)."""
        states, _ = encoder.encode([text])  # (1, L, D)
        if states.shape[-1] != self.dim:
            raise ValueError(
                f"the prompt reader reads {self.dim}-d token states; {encoder.name} gives "
                f"{states.shape[-1]}-d (fit a reader for it: vidora train reader)"
            )
        (offsets,) = encoder.token_offsets([text])
        return states[0, : len(offsets)].cpu(), offsets

    def _phrases(
        self,
        encoder: TextEncoder,
        text: str,
        encoded: tuple[torch.Tensor, list[tuple[int, int]]],
        kind_readout: tuple[str, torch.Tensor] | None = None,
    ) -> list[_Phrase]:
        """`phrases_of`, from the prompt's token states and offsets (`_token_states`)."""
        states, offsets = encoded  # (L, D)
        x = with_bias(states)  # (L, D + 1)
        context, weights = kind_readout or (self.kind_context, self.kind_weights)
        features = kind_features(states, context)  # (L, D) or (L, 3D)
        kind_scores = with_bias(features) @ weights  # (L, 1 + kinds)
        # Word pieces ("rico", "##chet", "##ing") join into words: a word scores their mean.
        words: list[list[int]] = []  # token positions per word
        spans: list[tuple[int, int]] = []
        for position, (start, end) in enumerate(offsets):
            if start == end:  # [CLS], [SEP], padding
                continue
            if not text[start:end].isalnum():  # punctuation names nothing and ends a phrase
                words.append([])
                spans.append((start, end))
                continue
            if spans and spans[-1][1] == start and words[-1]:
                words[-1].append(position)
                spans[-1] = (spans[-1][0], end)
            else:
                words.append([position])
                spans.append((start, end))
        kinds = [int(kind_scores[w].mean(0).argmax()) if w else -1 for w in words]  # 0: other
        # Up to GAP short plain words between two words of one kind belong to its phrase
        # ("sliding *to the* left"); punctuation (-1) never does.
        for n, kind in enumerate(kinds):
            if kind > 0 and kind != 1 + KINDS.index("colour"):
                for gap in range(1, GAP + 1):
                    if n - gap - 1 < 0 or kinds[n - gap] != 0:
                        break
                    if spans[n - gap][1] - spans[n - gap][0] > SHORT:
                        break
                    if kinds[n - gap - 1] == kind:
                        kinds[n - gap : n] = [kind] * gap
                        break
        # Consecutive words of one kind are one phrase (a colour word always its own).
        colour = 1 + KINDS.index("colour")
        found: list[tuple[str, int, int, torch.Tensor]] = []  # kind, start, end, mean state
        first = 0
        for n in range(1, len(words) + 1):
            ends = n == len(words) or kinds[n] != kinds[first] or kinds[n] == colour
            if not ends:
                continue
            if kinds[first] > 0:
                tokens = [t for w in words[first:n] for t in w]
                kind = KINDS[kinds[first] - 1]
                found.append((kind, spans[first][0], spans[n - 1][1], x[tokens].mean(0)))
            first = n
        # Each is named by its kind's concept readout: of its mean state in the prompt, or, for
        # the templated kinds, of its words' states in the kind's sentences (one batch for all).
        templated = [(kind, text[a:b]) for kind, a, b, _ in found if kind in self.templates]
        states_in_templates = iter(self._template_states(encoder, templated))
        phrases: list[_Phrase] = []
        for kind, start, end, state in found:
            read_from = next(states_in_templates) if kind in self.templates else state  # (D + 1,)
            concept = self.concepts[kind][int((read_from @ self.concept_weights[kind]).argmax())]
            phrases.append(_Phrase(kind, concept, start, end, state))
        return phrases

    def _template_states(
        self, encoder: TextEncoder, phrases: list[tuple[str, str]]
    ) -> list[torch.Tensor]:
        """Per (kind, words), the words' states in the kind's templates, averaged: (D + 1,)."""
        if not phrases:
            return []
        templates = [t for kind, _ in phrases for t in self.templates[kind]]
        words = [w for kind, w in phrases for _ in self.templates[kind]]
        states = template_states(encoder, templates, words)  # (sum of T, D + 1)
        counts = [len(self.templates[kind]) for kind, _ in phrases]
        return [group.mean(0) for group in states.split(counts)]

    # --- saving -----------------------------------------------------------------------

    def tensors(self, prefix: str = "reader.") -> dict[str, torch.Tensor]:
        """Its weights for a release file."""
        out = {f"{prefix}kind": self.kind_weights}
        if self.fallback_kind is not None:
            out[f"{prefix}kind_fallback"] = self.fallback_kind[1]
        out.update({f"{prefix}concept.{k}": w for k, w in self.concept_weights.items()})
        return out

    def config(self) -> dict:
        """Its concepts, phrases and templates for a release file's header."""
        return {
            "concepts": self.concepts,
            "phrases": self.phrases,
            "default_background": self.default_background,
            "backgrounds": list(self.backgrounds),
            "templates": self.templates,
            "kind_context": self.kind_context,
            "fallback_kind_context": self.fallback_kind and self.fallback_kind[0],
        }

    @classmethod
    def from_release(
        cls, tensors: dict[str, torch.Tensor], config: dict, prefix: str = "reader."
    ) -> PromptReader:
        """The reader `tensors` and `config` (from `tensors()` and `config()`) describe."""
        return cls(
            tensors[f"{prefix}kind"],
            {k: tensors[f"{prefix}concept.{k}"] for k in KINDS},
            config["concepts"],
            config["phrases"],
            config.get("default_background", "black"),
            tuple(config.get("backgrounds", ())),
            config.get("templates"),
            config.get("kind_context", "neighbours"),  # v18's and v19's files name none
            (config["fallback_kind_context"], tensors[f"{prefix}kind_fallback"])
            if config.get("fallback_kind_context")
            else None,
        )


def _kind_readout_dim(context: str, weights: torch.Tensor) -> int:
    """The state width D a kind readout of `context` reads, its shape checked."""
    if context not in KIND_CONTEXTS:
        raise ValueError(f"kind_context must be one of {KIND_CONTEXTS}, not {context!r}")
    width = 1 if context == "own" else 3
    if weights.shape[1] != len(KINDS) + 1 or (weights.shape[0] - 1) % width:
        rows = "D + 1" if context == "own" else "3D + 1"
        raise ValueError(
            f"kind weights {tuple(weights.shape)}: need {rows} rows and {len(KINDS) + 1} columns"
        )
    return (weights.shape[0] - 1) // width


def kind_features(states: torch.Tensor, context: str) -> torch.Tensor:
    """What the kind readout reads of each token: (L, D) -> (L, D) with `context` "own",
    (L, 3D) with "neighbours" (`in_context`)."""
    return states if context == "own" else in_context(states)


def in_context(states: torch.Tensor) -> torch.Tensor:
    """Each token's state beside its neighbours': (L, D) -> (L, 3D) [before, own, after], the
    ends padded with zeros. What kind of thing a word names shows in where it stands (a shape
    word follows a colour word), which its own state says only in part."""
    pad = torch.zeros_like(states[:1])
    return torch.cat([torch.cat([pad, states[:-1]]), states, torch.cat([states[1:], pad])], dim=1)


def template_states(encoder: TextEncoder, templates: list[str], words: list[str]) -> torch.Tensor:
    """Each of `words` set in its template (the {} of `templates[i]`), the mean state of its
    tokens there, L2-normalised, with a 1 for the bias: (N, D + 1). Normalised, a word's
    readout does not grow with how strongly the encoder states it."""
    texts = [t.replace("{}", w) for t, w in zip(templates, words, strict=True)]
    states, _ = encoder.encode(texts)  # (N, L, D)
    rows = []
    for k, (template, word, offsets) in enumerate(
        zip(templates, words, encoder.token_offsets(texts), strict=True)
    ):
        start = template.index("{}")
        end = start + len(word)
        tokens = [i for i, (a, b) in enumerate(offsets) if a < b and start <= a and b <= end]
        if not tokens:
            raise ValueError(f"{word!r} has no tokens of its own in {template!r}")
        rows.append(states[k, tokens].mean(0))
    return with_bias(torch.nn.functional.normalize(torch.stack(rows).cpu(), dim=-1))


def with_bias(states: torch.Tensor) -> torch.Tensor:
    """(N, D) -> (N, D + 1) float32 with a column of ones."""
    return torch.cat([states.float(), torch.ones(len(states), 1)], dim=1)


def _article(phrase: str) -> str:
    return "an" if phrase[:1] in "aeiou" else "a"
