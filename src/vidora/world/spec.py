"""The constants of Shapes World v1, exactly as `shared/specs/shapes-world.md` gives them.

Everything that renders, captions or judges the world reads its numbers from here, so the
contract lives in one place. Sizes are written as the API writes them: WIDTHxHEIGHT.
"""

from __future__ import annotations

from typing import Final

FPS: Final = 8
"""Frames per second of every clip."""

NUM_FRAMES: Final = 32
"""Frames in one clip (4 seconds)."""

SIZES: Final[tuple[str, ...]] = ("64x64", "96x64", "64x96")
"""The three canvas sizes, WIDTHxHEIGHT: square, landscape, portrait."""

BACKGROUNDS: Final[dict[str, tuple[int, int, int]]] = {
    "black": (10, 10, 10),
    "gray": (110, 110, 110),
    "navy": (20, 25, 70),
}

COLOURS: Final[dict[str, tuple[int, int, int]]] = {
    "red": (220, 40, 40),
    "orange": (245, 140, 30),
    "yellow": (240, 220, 50),
    "green": (50, 190, 70),
    "cyan": (40, 200, 220),
    "blue": (50, 80, 230),
    "purple": (150, 60, 200),
    "white": (240, 240, 240),
}

SHAPES: Final[tuple[str, ...]] = ("circle", "square", "triangle")

MOTIONS: Final[tuple[str, ...]] = ("left", "right", "up", "down", "still", "bouncing")

OBJECT_SIZES: Final[dict[str, float]] = {"small": 10.0, "large": 18.0}
"""Diameter or side in pixels before scaling by `scale(width, height)`."""

SPEED_RANGE: Final[tuple[float, float]] = (1.0, 1.5)
"""Pixels per frame, before scaling, for left/right/up/down."""

GRAVITY: Final = 0.25
"""Pixels per frame squared, before scaling, for bouncing."""

BOUNCE_DAMPING: Final = 0.8
"""Share of vertical speed kept (with its sign flipped) at the bottom edge."""

HELD_OUT_TRIPLES: Final[frozenset[tuple[str, str, str]]] = frozenset(
    {
        ("green", "triangle", "up"),
        ("red", "square", "bouncing"),
        ("blue", "circle", "left"),
        ("yellow", "triangle", "still"),
        ("purple", "square", "right"),
        ("orange", "circle", "down"),
        ("cyan", "triangle", "bouncing"),
        ("white", "square", "left"),
        ("red", "triangle", "right"),
        ("blue", "square", "down"),
        ("green", "circle", "still"),
        ("purple", "triangle", "left"),
    }
)
"""(colour, shape, motion) triples that never appear in a training clip."""

SPLITS: Final[tuple[str, ...]] = ("train", "eval-seen", "eval-wording", "eval-composition")

# The judge's reference method.
FOREGROUND_DISTANCE: Final = 60.0
"""RGB distance to the background over which a pixel is foreground."""

MIN_COMPONENT_PIXELS: Final = 12
"""Smallest object component, in pixels, before scaling by s**2."""

STILL_THRESHOLD: Final = 3.0
"""Net displacement, in pixels before scaling, under which an object is still."""

FILL_RATIOS: Final[dict[str, float]] = {"circle": 0.785, "square": 1.0, "triangle": 0.5}
"""Component area over bounding-box area for each shape."""


def parse_size(size: str) -> tuple[int, int]:
    """'96x64' -> (96, 64) as (width, height); raises ValueError naming the allowed sizes."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}, not {size!r}")
    width, height = size.split("x")
    return int(width), int(height)


def scale(width: int, height: int) -> float:
    """The spec's s: every length, speed and acceleration is multiplied by it."""
    return min(width, height) / 64
