"""Object-by-object composition: where a sampling drew its object, how two samplings join,
and the pipeline drawing each object of a prompt from its own prompt."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pytest
import torch

from vidora.pipelines import TextToVideoPipeline
from vidora.pipelines.composition import (
    TRIES,
    foreground,
    join,
    overlap,
    painted_out,
    part_seed,
    pixel_foreground,
    split_image,
)
from vidora.world.captions import object_prompts

ONE = "a red circle moving right on a black background"
TWO = "a red circle moving right and a blue square rising on a black background"


def _scene(objects: list[tuple[int, int, float]], frames: int = 3) -> torch.Tensor:
    """(4, F, 8, 8) latents: a background of small steps in random directions (each token 0.1
    from zero), and a 2x2 block of `value` at (row, col) for each object."""
    x = torch.randn(4, frames, 8, 8, generator=torch.Generator().manual_seed(0))
    x = 0.1 * x / x.norm(dim=0, keepdim=True)
    for row, col, value in objects:
        x[:, :, row : row + 2, col : col + 2] += value
    return x


def test_foreground_marks_the_object_and_a_token_around_it() -> None:
    distance, mask = foreground(_scene([(3, 3, 2.0)]))
    assert mask.shape == (3, 8, 8) and distance.shape == (3, 8, 8)
    assert mask[:, 3:5, 3:5].all()  # the object
    assert mask[:, 2:6, 2:6].all()  # and the ring of tokens round it
    assert mask.sum() == 3 * 16  # nothing else
    assert distance[:, 3:5, 3:5].min() > 10 * distance[:, 0, 0].max()


def test_join_takes_the_part_where_it_shows_an_object_more_strongly() -> None:
    base = _scene([(0, 0, 2.0), (5, 5, 1.0)])
    part = _scene([(0, 5, 2.0), (5, 5, 3.0)])
    joined = join(base, part)
    assert torch.equal(joined[:, :, 0:2, 0:2], base[:, :, 0:2, 0:2])  # base's own object
    assert torch.equal(joined[:, :, 0:2, 5:7], part[:, :, 0:2, 5:7])  # part's, on background
    assert torch.equal(joined[:, :, 5:7, 5:7], part[:, :, 5:7, 5:7])  # both: the stronger
    assert torch.equal(joined[:, :, 7, 0], base[:, :, 7, 0])  # background stays base's


def test_overlap_is_the_share_of_the_mask_already_drawn() -> None:
    mask = torch.zeros(2, 4, 4, dtype=torch.bool)
    mask[:, :2, :2] = True
    drawn = torch.zeros_like(mask)
    drawn[:, 0, :] = True
    assert overlap(mask, drawn) == 0.5
    assert overlap(torch.zeros_like(mask), drawn) == 0.0


def _frames(*squares: tuple[int, int, tuple[int, int, int]]) -> np.ndarray:
    """(2, 16, 16, 3) frames of a near-black background with a 3x3 square of `colour` at
    (row, col) for each square."""
    frames = np.full((2, 16, 16, 3), 10, np.uint8)
    for row, col, colour in squares:
        frames[:, row : row + 3, col : col + 3] = colour
    return frames


RED, BLUE = (220, 40, 40), (50, 80, 230)


def test_pixel_foreground_marks_the_object_and_a_pixel_around_it() -> None:
    mask = pixel_foreground(_frames((4, 4, RED)))
    expected = np.zeros((16, 16), bool)
    expected[3:8, 3:8] = True
    assert mask.shape == (2, 16, 16)
    assert np.array_equal(mask[0], expected) and np.array_equal(mask[1], expected)


def test_painting_out_keeps_the_object_and_clears_the_others() -> None:
    own, other = _frames((4, 4, RED)), _frames((4, 10, BLUE))
    joined = _frames((4, 4, RED), (4, 10, BLUE))
    assert np.array_equal(painted_out(joined, own, [other]), own)
    # Where both objects' own samplings drew, the joined video is kept.
    other = _frames((4, 6, BLUE))
    joined = _frames((4, 6, BLUE), (4, 4, RED))  # red in front, blue on its right
    out = painted_out(joined, own, [other])
    assert np.array_equal(out[:, 4:7, 3:8], joined[:, 4:7, 3:8])  # red and its ring
    assert (out[:, 4:7, 8] == 10).all()  # the blue beyond them is gone
    # A lone object's context is the joined video itself.
    assert np.array_equal(painted_out(joined, own, []), joined)


def test_part_seeds_are_fixed_and_distinct() -> None:
    seeds = {part_seed(s, k, a) for s in range(3) for k in (1, 2) for a in range(TRIES)}
    assert len(seeds) == 3 * 2 * TRIES
    assert part_seed(5, 1, 0) == part_seed(5, 1, 0)


@pytest.fixture(scope="module")
def pipes() -> tuple[TextToVideoPipeline, TextToVideoPipeline]:
    plain = TextToVideoPipeline.tiny_random(seed=0)
    composed = TextToVideoPipeline.tiny_random(seed=0)
    composed.defaults = replace(composed.defaults, compose_objects=True)
    return plain, composed


@dataclass
class _Calls:
    """What a pipeline's steps were called with and gave, call by call."""

    encoded: list[list[str]] = field(default_factory=list)
    given: list[np.ndarray | None] = field(default_factory=list)  # first frames given
    sampled: list[torch.Tensor] = field(default_factory=list)  # latents sampled
    decoded: list[torch.Tensor] = field(default_factory=list)  # latents decoded
    frames: list[np.ndarray] = field(default_factory=list)  # what decoding gave


def _spy(pipe: TextToVideoPipeline, monkeypatch: pytest.MonkeyPatch) -> _Calls:
    """Record `pipe`'s text encoding, sampling and decoding calls (until monkeypatch undoes)."""
    calls = _Calls()
    encode, sample, decode = pipe._encode_text, pipe._sample, pipe._decode

    def spy_encode(prompts: list[str]):
        calls.encoded.append(prompts)
        return encode(prompts)

    def spy_sample(*args):
        calls.given.append(args[7])
        calls.sampled.append(sample(*args))
        return calls.sampled[-1]

    def spy_decode(latents: torch.Tensor) -> np.ndarray:
        calls.decoded.append(latents)
        calls.frames.append(decode(latents))
        return calls.frames[-1]

    monkeypatch.setattr(pipe, "_encode_text", spy_encode)
    monkeypatch.setattr(pipe, "_sample", spy_sample)
    monkeypatch.setattr(pipe, "_decode", spy_decode)
    return calls


def test_each_object_is_drawn_from_its_own_prompt_and_joined(
    pipes: tuple[TextToVideoPipeline, TextToVideoPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, composed = pipes
    calls = _spy(composed, monkeypatch)
    seen: list[float] = []
    out = composed([ONE, TWO], seed=[3, 4], progress=seen.append)

    # One batch of samplings, and only its prompts encoded (never the whole two-object
    # prompt): each prompt's first object, and the second object TRIES times.
    first, second = object_prompts(TWO)
    assert calls.encoded == [[ONE, first, *[second] * TRIES, *[""] * (2 + TRIES)]]
    # What is decoded: the one-object prompt's sampling, and the two objects' joined, the
    # second taken from its least overlapping try.
    ((alone, base, *tries),) = calls.sampled
    drawn = foreground(base)[1]
    best = min(tries, key=lambda c: overlap(foreground(c)[1], drawn))
    (latents,) = calls.decoded
    assert torch.equal(latents[0], alone)
    assert torch.equal(latents[1], join(base, best))
    assert seen == sorted(seen) and seen[-1] == 1.0
    assert out.settings[1]["compose_objects"] is True
    # A one-object prompt is drawn as without composition; the same seed makes the same video
    # (batched or not: different matmul shapes round differently, by at most one level).
    single = plain([ONE, TWO], seed=[3, 4]).videos[0]
    assert np.abs(out.videos[0].astype(int) - single.astype(int)).max() <= 1
    monkeypatch.undo()
    again = composed(TWO, seed=4).videos[0]
    assert np.array_equal(again, composed(TWO, seed=4).videos[0])
    assert np.abs(again.astype(int) - out.videos[1].astype(int)).max() <= 1


def _two_squares(size: int = 64) -> np.ndarray:
    """(size, size, 3): TWO's objects as a first frame, a red and a blue square on black."""
    image = np.full((size, size, 3), 10, np.uint8)
    image[10:20, 10:20] = RED
    image[40:50, 30:40] = BLUE
    return image


def test_an_image_splits_into_one_image_per_named_colour() -> None:
    image = _two_squares()
    red, blue = split_image(image, ["red", "blue"])
    assert np.array_equal(red[10:20, 10:20], image[10:20, 10:20])
    assert (red[38:52, 28:42] == 10).all()  # the blue square and its edge painted out
    assert np.array_equal(blue[40:50, 30:40], image[40:50, 30:40])
    assert (blue[8:22, 8:22] == 10).all()
    # The regions go by colour, not by the order of the words.
    blue_first, red_second = split_image(image, ["blue", "red"])
    assert np.array_equal(blue_first, blue) and np.array_equal(red_second, red)
    # Where the objects cannot be told apart: an unknown colour word, a colour with no region,
    # two objects touching.
    assert split_image(image, ["red", "teal-ish"]) is None
    assert split_image(image, ["red", "blue", "green"]) is None
    touching = image.copy()
    touching[20:40, 15:35] = RED
    assert split_image(touching, ["red", "blue"]) is None


def test_a_given_image_is_split_and_each_object_drawn_from_its_own_part(
    pipes: tuple[TextToVideoPipeline, TextToVideoPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, composed = pipes
    image = _two_squares()
    calls = _spy(composed, monkeypatch)
    video = composed(TWO, seed=2, image=image).videos[0]
    monkeypatch.undo()

    first, second = object_prompts(TWO)
    assert calls.encoded == [[first, second, "", ""]]
    ((one, two),) = calls.given
    assert np.array_equal(np.stack([one[0], two[0]]), np.stack(split_image(image, ["red", "blue"])))
    ((base, part),) = calls.sampled
    assert torch.equal(calls.decoded[0][0], join(base, part))
    assert video.shape == (32, 64, 64, 3)
    # An image that cannot be split (no objects in it), and a video to extend, go to the whole
    # prompt, as without composition.
    blank = np.full((64, 64, 3), 10, np.uint8)
    a = composed(TWO, seed=2, image=blank).videos[0]
    assert np.array_equal(a, plain(TWO, seed=2, image=blank).videos[0])
    given_video = plain(TWO, seed=1).videos[0]
    b = composed(TWO, seed=2, video=given_video).videos[0]
    assert np.array_equal(b, plain(TWO, seed=2, video=given_video).videos[0])


def test_a_longer_composed_video_continues_each_object_from_its_own_prompt(
    pipes: tuple[TextToVideoPipeline, TextToVideoPipeline], monkeypatch: pytest.MonkeyPatch
) -> None:
    plain, composed = pipes
    short = composed(TWO, seed=4).videos[0]
    calls = _spy(composed, monkeypatch)
    eight = composed(TWO, seed=4, seconds=8).videos[0]
    monkeypatch.undo()

    # 8 s is three chunks: the composed first 4 s, then two extensions, each of both objects
    # from its own prompt, given the joined video's last 5 frames with the other object
    # painted out where that object's own sampling drew it.
    assert eight.shape == (64, 64, 64, 3)
    assert np.array_equal(eight[:32], short)
    first, second = object_prompts(TWO)
    assert calls.encoded[1] == calls.encoded[2] == [first, second, "", ""]
    base, *tries = calls.sampled[0]
    best = min(tries, key=lambda c: overlap(foreground(c)[1], foreground(base)[1]))
    own = composed._decode(torch.stack([base, best]))[:, :32]  # each object's own first 4 s
    assert calls.given[0] is None
    contexts = [painted_out(short[-5:], own[k][-5:], [own[1 - k][-5:]]) for k in (0, 1)]
    assert np.array_equal(calls.given[1], np.stack(contexts))
    # Each extension's objects are joined, and what is decoded from the join is the video.
    assert len(calls.sampled[1]) == len(calls.sampled[2]) == 2
    joined = join(calls.sampled[1][0], calls.sampled[1][1])
    assert np.array_equal(calls.frames[2][0], composed._decode(joined[None])[0])
    assert np.array_equal(eight[32:59], calls.frames[2][0][5:32])
    # The next extension paints out each object's own second chunk.
    own = composed._decode(calls.sampled[1])[:, :32]
    video = calls.frames[2][0][:32]
    contexts = [painted_out(video[-5:], own[k][-5:], [own[1 - k][-5:]]) for k in (0, 1)]
    assert np.array_equal(calls.given[2], np.stack(contexts))
    # A one-object prompt's long video is drawn as without composition, and a batch makes the
    # videos its prompts make one at a time (to within a level: other matmul shapes).
    alone = composed(ONE, seed=3, seconds=8).videos[0]
    assert (
        np.abs(alone.astype(int) - plain(ONE, seed=3, seconds=8).videos[0].astype(int)).max() <= 1
    )
    batch = composed([ONE, TWO], seed=[3, 4], seconds=8).videos
    for one_at_a_time, in_batch in zip([alone, eight], batch, strict=True):
        assert np.abs(one_at_a_time.astype(int) - in_batch.astype(int)).max() <= 1
